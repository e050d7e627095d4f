"""Console-script entry points of the host services."""

from __future__ import annotations

import sys

_prepared = False


def prepare_process() -> None:
    """Refuse eventlet and select oslo.service's threading backend.

    Call before anything imports oslo.messaging. Libraries such as futurist
    import eventlet whenever it happens to be installed; like nova-compute,
    our services make that import fail so they run on native threads only.
    Only our own processes do this: library code (the Vitrage datasource,
    the Nova driver) never changes the host process's import machinery.
    """
    global _prepared
    if _prepared:
        return
    if "eventlet" in sys.modules and sys.modules["eventlet"] is not None:
        raise RuntimeError("eventlet was imported before ha_guest could refuse it")
    sys.modules["eventlet"] = None  # type: ignore[assignment]  # import now raises ImportError
    from oslo_service import backend

    backend.init_backend(backend.BackendType.THREADING)
    _prepared = True
