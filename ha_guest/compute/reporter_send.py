"""One attempt at sending reports to the controller: a batch (API 1.2) or one report (API 1.0).

The Reporter (reporter.py) owns the queue, the order and the retries; this
module makes one call under our own deadline (reporter_calls.py) and applies
its answer: counters, per-item errors, and ``on_sent`` for each report the
controller acknowledged.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

import oslo_messaging

from ha_guest.compute.reporter_calls import DeadlineCaller
from ha_guest.rpc import payloads

LOG = logging.getLogger(__name__)

FAULT = "report_fault"
RECOVERY = "report_recovery"
EXIT = "report_exit"
STATE = "report_state"
BATCH = "report_batch"
#: report_batch's item type of each 1.0 method.
BATCH_TYPES = {FAULT: payloads.TYPE_FAULT, RECOVERY: payloads.TYPE_RECOVERY, EXIT: payloads.TYPE_EXIT}
#: The controller API version that has report_batch.
BATCH_VERSION = "1.2"
#: Seconds the 1.0 methods are used after a controller answered report_batch with UnsupportedVersion.
UNBATCHED_S = 300

Item = Tuple[str, Dict[str, Any]]
#: Called from the reporter thread for each acknowledged report: (method, payload, {"duplicate": bool}).
OnSent = Callable[[str, Dict[str, Any], Dict[str, Any]], None]


class ControllerClient(Protocol):
    """The part of ha_guest.rpc's ControllerAPI the reporter uses."""

    def report_fault(self, ctxt: Any, fault: Dict[str, Any], timeout: Optional[float] = None) -> Any:
        """Call: a fault (answers {"duplicate": bool})."""

    def report_recovery(self, ctxt: Any, recovery: Dict[str, Any], timeout: Optional[float] = None) -> Any:
        """Call: an incident ended."""

    def report_exit(self, ctxt: Any, exit: Dict[str, Any], timeout: Optional[float] = None) -> Any:
        """Call: a guest ended monitoring."""

    def report_state(self, ctxt: Any, report: Dict[str, Any]) -> Any:
        """Cast: the state of every monitored instance."""


def batch_item(item: Item) -> Dict[str, Any]:
    """Return a queued report as a report_batch item; InvalidPayload if it cannot be sent."""
    method, payload = item
    return payloads.batch_item({"type": BATCH_TYPES[method], "payload": payload})


class ReportSender:
    """Makes the reporter's calls and applies their answers (reporter thread only)."""

    def __init__(self, caller: DeadlineCaller, ctxt: Dict[str, Any], counters: Dict[str, int], *,
                 timeout_s: float, deadline_s: float, on_sent: Optional[OnSent] = None) -> None:
        self.caller = caller
        self.ctxt = ctxt
        self.counters = counters
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.on_sent = on_sent
        #: Until when (monotonic) the 1.0 methods are used because a controller refused report_batch.
        self._unbatched_until = 0.0

    def batching(self) -> bool:
        """Whether report_batch may be used (the version cap allows it, no controller refused it lately)."""
        if time.monotonic() < self._unbatched_until:
            return False
        client = self.caller.client
        can_send = getattr(client, "can_send_version", None)
        if callable(can_send):
            return bool(can_send(BATCH_VERSION))
        return callable(getattr(client, BATCH, None))

    def send_batch(self, items: List[Item], checked: List[Dict[str, Any]]) -> None:
        """Send ``items`` (``checked``: their batch items) in one call; raises if the call failed."""
        try:
            answer = self.caller.call(BATCH, self.ctxt, checked, deadline_s=self.deadline_s,
                                      **self._timeout(BATCH))
        except oslo_messaging.RemoteError as exc:
            if exc.exc_type == "UnsupportedVersion":
                # An older controller (a rolling upgrade whose version cap was not lowered): the 1.0
                # methods at once, not after MAX_REMOTE_ERRORS refusals of every batch; batches again later.
                self._unbatched_until = time.monotonic() + UNBATCHED_S
                LOG.warning("a controller does not know report_batch (controller API %s); reports go one by one "
                            "for %d s (set [rpc] controller_version_cap = 1.1 while older controllers run)",
                            BATCH_VERSION, UNBATCHED_S)
            raise
        self.counters["batches"] += 1
        results = answer["results"] if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(items):
            results = [{}] * len(items)  # a fake or odd answer: the call succeeded, count them as sent
        for item, result in zip(items, results, strict=True):
            if "error" in result:
                self.counters["given_up"] += 1
                LOG.error("controller refused %s for %s: %s; dropped", item[0], item[1].get("instance_uuid"),
                          result["error"], extra={"instance_uuid": item[1].get("instance_uuid")})
                continue
            self.acknowledged(item, result)

    def send_one(self, item: Item) -> None:
        """Send one report with its 1.0 method; raises if the call failed."""
        method, payload = item
        result = self.caller.call(method, self.ctxt, payload, deadline_s=self.deadline_s, **self._timeout(method))
        self.acknowledged(item, result if isinstance(result, dict) else {})

    def send_state(self, report: Dict[str, Any]) -> None:
        """Cast a state report once; a failure is logged, never retried (the next one supersedes it)."""
        try:
            self.caller.call(STATE, self.ctxt, report, deadline_s=self.deadline_s)
        except Exception as exc:  # noqa: BLE001 - the next state report carries the same and newer
            self.counters["attempts_failed"] += 1
            LOG.warning("state report not sent: %s", exc)
            return
        self.counters["sent"] += 1

    def _timeout(self, method: str) -> Dict[str, float]:
        # ControllerAPI takes an oslo.messaging timeout per call; a stand-in client may not (tests).
        if _takes_timeout(type(self.caller.client), method):  # type: ignore[arg-type]  # classes hash
            return {"timeout": self.timeout_s}
        return {}

    def acknowledged(self, item: Item, result: Dict[str, Any]) -> None:
        """Count an acknowledged report and tell ``on_sent``."""
        duplicate = bool(result.get("duplicate"))
        self.counters["sent"] += 1
        if duplicate:
            self.counters["duplicates"] += 1
        if self.on_sent is not None:
            try:
                self.on_sent(item[0], item[1], {"duplicate": duplicate})
            except Exception:  # noqa: BLE001 - a failing callback must not stop reporting
                LOG.exception("on_sent failed for %s of %s", item[0], item[1].get("instance_uuid"),
                              extra={"instance_uuid": item[1].get("instance_uuid")})


@functools.lru_cache(maxsize=64)
def _takes_timeout(client_type: Any, method: str) -> bool:
    try:
        return "timeout" in inspect.signature(getattr(client_type, method)).parameters
    except (AttributeError, TypeError, ValueError):
        return False
