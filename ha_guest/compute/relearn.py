"""Re-learning this host's open incidents from the controller, when the state file is lost.

When neither the state file nor its previous generation can be read, the
agent asks a controller for the faults it holds for this host
(``ControllerAPI.list_faults(host=...)``, API 1.2) from a thread of its own,
retrying until one answers, and hands the answer to the loop. With it, a
guest still hung keeps its incident (same id, no second fault report, no
second recovery action) and one that recovered meanwhile gets its recovery
reported. Until the answer came, the agent sends no state report: one
without those incidents would clear them at the controller.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Optional

import oslo_messaging

LOG = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0

Deliver = Callable[[Optional[List[Dict[str, Any]]]], object]
#: How long the agent's start waits for the answer (a later answer is applied all the same).
WAIT_S = 3.0


def relearn(api: Any, host: str, deliver: Deliver, wait_s: float = WAIT_S) -> Optional["Relearn"]:
    """Start asking (when ``api`` can list faults) and wait up to ``wait_s`` for the answer; the Relearn."""
    if not hasattr(api, "list_faults"):
        return None
    asking = Relearn(api, host, deliver)
    asking.start()
    if not asking.wait(wait_s):
        LOG.warning("no answer from the controllers about this host's open faults yet; starting anyway")
    return asking


class Relearn:
    """Asks the controllers for this host's open faults until one answers (one thread)."""

    def __init__(self, api: Any, host: str, deliver: Deliver, ctxt: Optional[Dict[str, Any]] = None) -> None:
        """``deliver(faults)`` gets this host's faults, or None when the controllers cannot say (too old)."""
        self.api = api
        self.host = host
        self.deliver = deliver
        self.ctxt: Dict[str, Any] = ctxt if ctxt is not None else {}
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Start asking."""
        self._thread = threading.Thread(target=self._run, name="ha-guest-relearn", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the answer; whether it came."""
        return self.done.wait(timeout)

    def stop(self) -> None:
        """Stop retrying (a call under way is left to its own timeout)."""
        self._stop.set()

    def _run(self) -> None:
        delay = RETRY_MIN_S
        while not self._stop.is_set():
            try:
                faults = self.api.list_faults(self.ctxt, host=self.host)
            except (oslo_messaging.RemoteError, oslo_messaging.UnsupportedVersion, oslo_messaging.RPCVersionCapError,
                    TypeError) as exc:
                # A controller older than API 1.2 (or [rpc] controller_version_cap below it: oslo.messaging's
                # RPCVersionCapError, no UnsupportedVersion) cannot filter by host: go on without. Retrying
                # would hold the state reports back for good, and the controllers would call the agent silent.
                LOG.error("the controllers cannot list this host's faults (%s); open faults of the lost state "
                          "file are left to the controller's reconciliation", exc)
                self._deliver(None)
                return
            except Exception as exc:  # noqa: BLE001 - no controller yet: retry
                LOG.warning("cannot ask the controllers for this host's open faults yet: %s; retrying in %.1f s",
                            exc, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2.0, RETRY_MAX_S)
                continue
            mine = [fault for fault in faults or [] if isinstance(fault, dict) and fault.get("host") == self.host]
            LOG.info("re-learned %d open fault(s) of this host from the controllers", len(mine))
            self._deliver(mine)
            return

    def _deliver(self, faults: Optional[List[Dict[str, Any]]]) -> None:
        try:
            self.deliver(faults)
        finally:
            self.done.set()
