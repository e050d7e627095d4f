"""Reports to the controller, sent from a thread of their own: in batches, in order, retried, bounded.

The event loop never waits for the controller: it queues a report and moves
on. One thread sends the queue in order, so the reports of one instance reach
the controller in the order they happened. Every fault, recovery and exit
queued goes out in one report_batch call (controller API 1.2; at most
``batch_size`` per call), retried with backoff until the controller
acknowledges it; reports queued meanwhile join the batch's next attempt.
Below API 1.2 (``[rpc] controller_version_cap``) they go one by one with the
1.0 methods. A state report (a cast, superseded by the next one) is sent
once, in its place in the queue. ``on_sent`` hears of every acknowledged
fault, recovery and exit (from the reporter thread).

Every call has a deadline of our own (reporter_calls.py): a call stuck on a
hung broker node is abandoned and the report sent again on a new connection.
An abandoned call may still arrive: reports are idempotent at the controller.

The queue holds at most ``queue_size`` reports. Only the newest state report
is kept. When the queue is full, a queued state report is dropped to make
room; when there is none, the new report is dropped and logged as an error.
Even then nothing is lost for good: the next state report carries every open
fault, and the controller reconciles its registry with it. A report the
controller refuses (an invalid payload, or an error three times over) is
dropped and logged; the others go on.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional

import oslo_messaging
from oslo_config import cfg

from ha_guest.compute.reporter_calls import DeadlineCaller
from ha_guest.compute.reporter_send import (
    EXIT,
    FAULT,
    RECOVERY,
    STATE,
    ControllerClient,
    Item,
    OnSent,
    ReportSender,
    batch_item,
)
from ha_guest.rpc import payloads
from ha_guest.rpc.errors import HAGuestRPCError, InvalidPayload

LOG = logging.getLogger(__name__)

__all__ = ["EXIT", "FAULT", "RECOVERY", "STATE", "ControllerClient", "MAX_REMOTE_ERRORS", "Reporter",
           "reporter_options"]

#: Times a report the controller refused with an error is tried before it is dropped
#: (a controller that is full or failing may recover; one report must not block the others for ever).
#: A batch refused that often is sent again one report at a time, so that only the culprit is dropped.
MAX_REMOTE_ERRORS = 3
#: Seconds between two warnings about a controller that does not answer.
WARN_PERIOD_S = 30.0
#: Our deadline on a call is its oslo.messaging timeout plus this margin (oslo's own timeout, when
#: it works, fails the call first and keeps the connection).
DEADLINE_MARGIN_S = 0.5


def reporter_options(conf: cfg.ConfigOpts) -> Dict[str, Any]:
    """Return the Reporter's keyword arguments from the [rpc] options (none if they are not registered)."""
    if "rpc" not in conf:
        return {}
    return {"batch_size": conf.rpc.report_batch_size, "call_timeout_s": conf.rpc.report_timeout_s,
            "retry_max_s": conf.rpc.report_retry_max_s}


class Reporter:
    """Sends queued reports to the controller from one thread."""

    def __init__(self, api: ControllerClient, queue_size: int = 10000, retry_min_s: float = 0.05,
                 retry_max_s: float = 0.5, ctxt: Optional[Dict[str, Any]] = None, *,
                 on_sent: Optional[OnSent] = None, batch_size: int = 500, call_timeout_s: float = 2.0,
                 renew: Optional[Callable[[Any], Any]] = None) -> None:
        """``renew(client)``: a fresh client after a missed deadline (default: ``api.renewed()`` if any)."""
        self.queue_size = queue_size
        self.retry_min_s = retry_min_s
        self.retry_max_s = max(retry_min_s, retry_max_s)
        self.batch_size = max(1, min(batch_size, payloads.MAX_BATCH))
        self.ctxt: Dict[str, Any] = ctxt if ctxt is not None else {}
        self.counters: Dict[str, int] = collections.OrderedDict(
            (name, 0) for name in ("queued", "sent", "batches", "duplicates", "attempts_failed", "state_superseded",
                                   "state_dropped", "events_dropped", "given_up", "unsent_at_stop"))
        self.caller = DeadlineCaller(api, renew)
        self._sender = ReportSender(self.caller, self.ctxt, self.counters, timeout_s=call_timeout_s,
                                    deadline_s=call_timeout_s + DEADLINE_MARGIN_S, on_sent=on_sent)
        self._queue: Deque[Item] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._deadline = 0.0  # when stopping: give up after this (monotonic)
        self._busy = 0  # reports taken from the queue and not yet acknowledged or dropped
        self._thread: Optional[threading.Thread] = None
        self._last_warning = -WARN_PERIOD_S

    @property
    def api(self) -> Any:
        """The controller client in use (a new one after a call missed its deadline)."""
        return self.caller.client

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
                              method, payload.get("instance_uuid"),
                              extra={"instance_uuid": payload.get("instance_uuid")})
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
            return len(self._queue) + self._busy

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
        self.caller.close()

    # -- the sending thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue or self._past_deadline():
                    self._cond.notify_all()
                    return
                batch: List[Item] = [self._queue.popleft()]
                if batch[0][0] != STATE:
                    self._top_up(batch)
                self._busy = len(batch)
            try:
                if batch[0][0] == STATE:
                    self._sender.send_state(batch[0][1])
                else:
                    self._send_events(batch)
            finally:
                with self._cond:
                    self._busy = 0
                    self._cond.notify_all()

    def _top_up(self, batch: List[Item]) -> None:
        """Move the faults, recoveries and exits at the queue's head into ``batch`` (lock held)."""
        queue = self._queue
        while queue and len(batch) < self.batch_size and queue[0][0] != STATE:
            batch.append(queue.popleft())
        self._busy = len(batch)

    def _past_deadline(self) -> bool:
        return self._stopping and time.monotonic() >= self._deadline

    def _send_events(self, batch: List[Item]) -> None:
        """Send faults, recoveries and exits until each is acknowledged or dropped; keeps their order."""
        delay = self.retry_min_s
        remote_errors = 0
        one_by_one = False  # a batch the controller kept failing: find the culprit report by report
        while batch:
            batching = not one_by_one and self._sender.batching()
            try:
                if batching:
                    checked = self._checked(batch)
                    if not batch:
                        return
                    self._sender.send_batch(batch, checked)
                    del batch[:]
                else:
                    self._sender.send_one(batch[0])
                    del batch[0]
                    remote_errors = 0
                with self._cond:
                    self._busy = len(batch)
                delay = self.retry_min_s
                continue
            except Exception as exc:  # noqa: BLE001 - whatever failed, the reports must get through
                self.counters["attempts_failed"] += 1
                if isinstance(exc, (oslo_messaging.RemoteError, HAGuestRPCError)):
                    # The controller got it and failed: retrying for ever would block every report.
                    remote_errors += 1
                    if batching and (isinstance(exc, InvalidPayload) or remote_errors >= MAX_REMOTE_ERRORS):
                        LOG.warning("controller failed a batch of %d reports %d times (%s); sending them one by "
                                    "one", len(batch), remote_errors, exc)
                        one_by_one, remote_errors = True, 0
                        continue
                    if not batching and (isinstance(exc, InvalidPayload) or remote_errors >= MAX_REMOTE_ERRORS):
                        self._give_up(batch.pop(0), remote_errors, exc)
                        remote_errors = 0
                        continue
                self._warn(batch, exc)
            if not self._sleep(delay):
                with self._cond:
                    self._queue.extendleft(reversed(batch))  # counted as unsent by stop()
                return
            delay = min(delay * 2.0, self.retry_max_s)
            if not one_by_one:
                with self._cond:
                    self._top_up(batch)

    def _checked(self, batch: List[Item]) -> List[Dict[str, Any]]:
        """Return the batch items of ``batch``, dropping (from ``batch`` too) those that cannot be sent."""
        checked = []
        for item in list(batch):
            try:
                checked.append(batch_item(item))
            except (InvalidPayload, KeyError) as exc:
                batch.remove(item)
                self._give_up(item, 0, exc)
        return checked

    def _give_up(self, item: Item, times: int, exc: Exception) -> None:
        self.counters["given_up"] += 1
        LOG.error("controller refused %s for %s%s, dropped: %s", item[0], item[1].get("instance_uuid"),
                  " %d times" % times if times > 1 else "", exc, extra={"instance_uuid": item[1].get("instance_uuid")})

    def _warn(self, batch: List[Item], exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_PERIOD_S:
            self._last_warning = now
            # log: several instances (a batch; the first one is named)
            LOG.warning("cannot reach the controller (%d report(s), first %s for %s): %s; retrying, %d queued",
                        len(batch), batch[0][0], batch[0][1].get("instance_uuid"), exc, len(self._queue),
                        extra={"instance_uuid": batch[0][1].get("instance_uuid") if len(batch) == 1 else None})

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
