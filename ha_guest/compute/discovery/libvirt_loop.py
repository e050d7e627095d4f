"""libvirt's default event loop, started once per process in a daemon thread (for the libvirt discovery).

The loop only runs libvirt's callbacks, which must queue work and return:
it also carries the keepalive of every connection of the process, so
nothing here may wait on libvirtd or on the compute agent.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from typing import Any

LOG = logging.getLogger(__name__)

_event_loop_lock = threading.Lock()
_libvirt_module: Any = None


def event_loop() -> Any:
    """Return the libvirt module with its default event loop running in a daemon thread (once per process).

    Call it before the process opens any libvirt connection: libvirt
    delivers a connection's events only through the loop registered then.
    """
    global _libvirt_module
    with _event_loop_lock:
        if _libvirt_module is not None:
            return _libvirt_module
        try:
            module = importlib.import_module("libvirt")
        except ImportError as exc:
            raise RuntimeError(
                "the libvirt discovery driver needs libvirt-python: pip install 'ha_guest[libvirt]' "
                "(it builds against libvirt's headers: apt-get install libvirt-dev pkg-config)") from exc
        # libvirt prints every error on stderr by default; they reach us as exceptions anyway.
        module.registerErrorHandler(_log_libvirt_error, None)
        module.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run_event_loop, args=(module,), name="libvirt-event-loop", daemon=True)
        thread.start()
        _libvirt_module = module
        return module


def _log_libvirt_error(_ctx: Any, error: Any) -> None:
    LOG.debug("libvirt: %s", error[2] if isinstance(error, (list, tuple)) and len(error) > 2 else error)


def _run_event_loop(module: Any) -> None:
    while True:
        try:
            module.virEventRunDefaultImpl()
        except Exception:  # noqa: BLE001 - the loop must outlive any one failure
            LOG.exception("libvirt event loop iteration failed")
            time.sleep(0.1)
