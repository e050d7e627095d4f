"""Reports to the controller, sent from a thread of their own: in order, retried, bounded.

The event loop never waits for the controller: it queues a report and moves
on. One thread sends the queue in order, so the reports of one instance reach
the controller in the order they happened. A fault, recovery or exit is
retried with backoff until the controller acknowledges it; a state report
(a cast, superseded by the next one) is sent once.

The queue holds at most ``queue_size`` reports. Only the newest state report
is kept. When the queue is full, a queued state report is dropped to make
room; when there is none, the new report is dropped and logged as an error.
Even then nothing is lost for good: the next state report carries every open
fault, and the controller reconciles its registry with it.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional, Protocol, Tuple

import oslo_messaging

from ha_guest.rpc.errors import HAGuestRPCError, InvalidPayload

LOG = logging.getLogger(__name__)

FAULT = "report_fault"
RECOVERY = "report_recovery"
EXIT = "report_exit"
STATE = "report_state"

#: Times a report the controller refused with an error is tried before it is dropped
#: (a controller that is full or failing may recover; one report must not block the others for ever).
MAX_REMOTE_ERRORS = 3
#: Seconds between two warnings about a controller that does not answer.
WARN_PERIOD_S = 30.0


class ControllerClient(Protocol):
    """The part of ha_guest.rpc's ControllerAPI the reporter uses."""

    def report_fault(self, ctxt: Any, fault: Dict[str, Any]) -> Any:
        """Call: a fault (answers {"duplicate": bool})."""

    def report_recovery(self, ctxt: Any, recovery: Dict[str, Any]) -> Any:
        """Call: an incident ended."""

    def report_exit(self, ctxt: Any, exit: Dict[str, Any]) -> Any:
        """Call: a guest ended monitoring."""

    def report_state(self, ctxt: Any, report: Dict[str, Any]) -> Any:
        """Cast: the state of every monitored instance."""


Item = Tuple[str, Dict[str, Any]]


class Reporter:
    """Sends queued reports to the controller from one thread."""

    def __init__(self, api: ControllerClient, queue_size: int = 10000, retry_min_s: float = 0.1,
                 retry_max_s: float = 5.0, ctxt: Optional[Dict[str, Any]] = None,
                 on_sent: Optional[Callable[[str, Dict[str, Any], Any], None]] = None) -> None:
        """``on_sent(method, payload, result)`` is called from the sending thread once a report is acknowledged."""
        self.api = api
        self.on_sent = on_sent
        self.queue_size = queue_size
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.ctxt: Dict[str, Any] = ctxt if ctxt is not None else {}
        self.counters: Dict[str, int] = collections.OrderedDict(
            (name, 0) for name in ("queued", "sent", "duplicates", "attempts_failed", "state_superseded",
                                   "state_dropped", "events_dropped", "given_up", "unsent_at_stop"))
        self._queue: Deque[Item] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._deadline = 0.0  # when stopping: give up after this (monotonic)
        self._busy = False
        self._thread: Optional[threading.Thread] = None
        self._last_warning = -WARN_PERIOD_S

    # -- producers (any thread; never block) --------------------------------------------------

    def report_fault(self, fault: Dict[str, Any]) -> None:
        """Queue a fault; retried until acknowledged."""
        self._put(FAULT, fault)

    def report_recovery(self, recovery: Dict[str, Any]) -> None:
        """Queue a recovery; retried until acknowledged."""
        self._put(RECOVERY, recovery)

    def report_exit(self, exit: Dict[str, Any]) -> None:
        """Queue an exit; retried until acknowledged."""
        self._put(EXIT, exit)

    def report_state(self, report: Dict[str, Any]) -> None:
        """Queue a state report, replacing one still waiting."""
        self._put(STATE, report)

    def _put(self, method: str, payload: Dict[str, Any]) -> None:
        with self._cond:
            queue = self._queue
            if method == STATE:
                for index, (queued, _) in enumerate(queue):
                    if queued == STATE:
                        del queue[index]
                        self.counters["state_superseded"] += 1
                        break
            if len(queue) >= self.queue_size:
                if not self._drop_a_state_report():
                    if method == STATE:
                        self.counters["state_dropped"] += 1
                        LOG.warning("report queue full (%d): state report dropped", self.queue_size)
                        return
                    self.counters["events_dropped"] += 1
                    LOG.error("report queue full (%d) of faults, recoveries and exits: %s for %s DROPPED; "
                              "the next state report will carry the current state", self.queue_size,
                              method, payload.get("instance_uuid"))
                    return
            queue.append((method, payload))
            self.counters["queued"] += 1
            self._cond.notify()

    def _drop_a_state_report(self) -> bool:
        for index, (method, _) in enumerate(self._queue):
            if method == STATE:
                del self._queue[index]
                self.counters["state_dropped"] += 1
                LOG.warning("report queue full (%d): state report dropped", self.queue_size)
                return True
        return False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sending thread."""
        self._thread = threading.Thread(target=self._run, name="ha-guest-reporter", daemon=True)
        self._thread.start()

    def pending(self) -> int:
        """Reports queued or being sent."""
        with self._cond:
            return len(self._queue) + (1 if self._busy else 0)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything queued was sent; return whether it was."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def stop(self, flush_timeout: float = 2.0) -> None:
        """Send what is queued for up to ``flush_timeout`` seconds, then stop the thread."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + flush_timeout
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(flush_timeout + 1.0)
        with self._cond:
            left = len(self._queue)
            if left:
                self.counters["unsent_at_stop"] += left
                LOG.warning("%d report(s) not sent before stopping", left)
                self._queue.clear()

    # -- the sending thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue or self._past_deadline():
                    self._cond.notify_all()
                    return
                item = self._queue.popleft()
                self._busy = True
            try:
                self._send(item)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _past_deadline(self) -> bool:
        return self._stopping and time.monotonic() >= self._deadline

    def _send(self, item: Item) -> None:
        method, payload = item
        delay = self.retry_min_s
        remote_errors = 0
        while True:
            try:
                result = getattr(self.api, method)(self.ctxt, payload)
            except Exception as exc:  # noqa: BLE001 - whatever failed, the report must get through
                self.counters["attempts_failed"] += 1
                if method == STATE:
                    LOG.warning("state report not sent: %s", exc)
                    return
                if isinstance(exc, (oslo_messaging.RemoteError, HAGuestRPCError)):
                    remote_errors += 1
                    if isinstance(exc, InvalidPayload) or remote_errors >= MAX_REMOTE_ERRORS:
                        # The controller got it and failed: retrying forever would block every report.
                        self.counters["given_up"] += 1
                        LOG.error("controller refused %s for %s %d times, dropped: %s", method,
                                  payload.get("instance_uuid"), remote_errors, exc)
                        return
                self._warn(method, payload, exc)
                if not self._sleep(delay):
                    with self._cond:
                        self._queue.appendleft(item)  # counted as unsent by stop()
                    return
                delay = min(delay * 2.0, self.retry_max_s)
                continue
            self.counters["sent"] += 1
            if isinstance(result, dict) and result.get("duplicate"):
                self.counters["duplicates"] += 1
            if self.on_sent is not None and method != STATE:
                try:
                    self.on_sent(method, payload, result)
                except Exception:  # noqa: BLE001 - a listener bug must not stop the reports
                    LOG.exception("on_sent failed for %s", method)
            return

    def _warn(self, method: str, payload: Dict[str, Any], exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_PERIOD_S:
            self._last_warning = now
            LOG.warning("cannot reach the controller (%s for %s): %s; retrying, %d queued", method,
                        payload.get("instance_uuid"), exc, len(self._queue))

    def _sleep(self, delay: float) -> bool:
        """Wait before a retry; False if stopping and out of time."""
        with self._cond:
            end = time.monotonic() + delay
            while True:
                if self._stopping:
                    left = self._deadline - time.monotonic()
                    if left <= 0:
                        return False
                    wait = min(end - time.monotonic(), left)
                else:
                    wait = end - time.monotonic()
                if wait <= 0:
                    return True
                self._cond.wait(wait)
