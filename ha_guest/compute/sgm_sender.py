"""Server group messaging requests from this host to the controllers, sent from threads of their own.

The event loop never waits for the broker. Broadcasts go into one bounded
queue; one thread hands everything queued to a controller as one batch
(ControllerAPI.sgm_broadcast, a call that returns once the controller has
cast the deliveries), one batch at a time: so one sender's broadcasts keep
their order, under load a call carries many broadcasts, and at light load a
broadcast leaves at once. Status requests are RPC calls
with a bounded timeout on a small pool of threads. Whatever cannot be sent
(queue full, broker unreachable, no controller answered in time) comes back
to the loop as a failure, which the relay turns into ``nack unavailable``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Protocol

from ha_guest.compute.log_gate import KeyedLogGates
from ha_guest.sinks.action_pool import ActionPool

LOG = logging.getLogger(__name__)

#: Most broadcasts one call carries.
MAX_BATCH = 500
_STOP = object()

Broadcast = Dict[str, Any]
#: Called (from a sender thread) with the broadcasts no controller took, and why.
OnFailure = Callable[[List[Broadcast], str], None]
#: Called (from a sender thread) with a status answer: {"members": [...]} or {"nack": ..., "detail": ...}.
OnStatus = Callable[[Dict[str, Any]], None]


class SgmControllerClient(Protocol):
    """The part of ha_guest.rpc's ControllerAPI the sender uses."""

    def sgm_broadcast(self, ctxt: Any, broadcasts: List[Broadcast], timeout: Optional[float] = None,
                      retry: Optional[int] = None) -> None:
        """Call: a batch of guest broadcasts, routed when it returns."""

    def sgm_status(self, ctxt: Any, instance_uuid: str, timeout: Optional[float] = None,
                   retry: Optional[int] = None) -> Dict[str, Any]:
        """Call: the Nova state of every member of the instance's group."""


class SgmSender:
    """Hands broadcasts to the controllers in batches and makes status calls, off the loop."""

    def __init__(self, client: SgmControllerClient, on_failure: OnFailure, *, queue_size: int = 10000,
                 timeout_s: float = 2.5, status_workers: int = 4, cast_retry: int = 1,
                 batch_window_s: float = 0.0) -> None:
        self.client = client
        self.on_failure = on_failure
        self.timeout_s = timeout_s
        self.cast_retry = cast_retry
        self.batch_window_s = batch_window_s
        self.counters = {"calls": 0, "broadcasts_sent": 0, "call_failures": 0, "queue_full": 0,
                         "status_calls": 0, "status_failures": 0}
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="ha-guest-sgm-sender", daemon=True)
        self._status_pool = ActionPool("sgm-status", status_workers, queue_size=max(16, status_workers * 16),
                                       log_drops=False)
        self._warnings = KeyedLogGates(LOG, time.monotonic)  # thread-safe; one line per 10 s per kind

    def start(self) -> None:
        """Start the threads."""
        self._thread.start()
        self._status_pool.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued for up to ``timeout`` seconds, then stop."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._status_pool.stop(timeout)

    def broadcast(self, item: Broadcast) -> bool:
        """Queue one broadcast (any thread, never blocks); False if the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.counters["queue_full"] += 1
            return False
        return True

    def status(self, instance_uuid: str, on_answer: OnStatus) -> bool:
        """Ask a controller for the group status; ``on_answer`` gets the answer; False if the pool is full."""
        return self._status_pool.submit(self._status_call, instance_uuid, on_answer)

    def pending(self) -> int:
        """Broadcasts waiting for a controller."""
        return self._queue.qsize()

    def _status_call(self, instance_uuid: str, on_answer: OnStatus) -> None:
        self.counters["status_calls"] += 1
        try:
            answer = self.client.sgm_status({}, instance_uuid, timeout=self.timeout_s,
                                            retry=self.cast_retry)
        except Exception as exc:  # noqa: BLE001 - timeout, broker down, remote error: all mean unavailable
            self.counters["status_failures"] += 1
            self._warnings.log("status", logging.WARNING, "status request for %s failed: %s", instance_uuid, exc,
                               instance_uuid=instance_uuid)
            answer = {"nack": "unavailable", "detail": "no controller answered"}
        on_answer(answer)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._send(batch)
            if stop:
                return
            if self.batch_window_s > 0 and not self._queue.empty():
                # More came while the call was under way: under load, gather for a moment so that
                # each call (and each of the controller's casts) carries more. Idle, nothing waits.
                time.sleep(self.batch_window_s)

    def _send(self, batch: List[Broadcast]) -> None:
        try:
            self.client.sgm_broadcast({}, batch, timeout=self.timeout_s, retry=self.cast_retry)
        except Exception as exc:  # noqa: BLE001 - broker down, no controller in time: tell the guests
            self.counters["call_failures"] += 1
            self._warnings.log("broadcast", logging.WARNING, "could not hand %d broadcast(s) to a controller: %s",
                               len(batch), exc)
            self.on_failure(batch, "unavailable")
            return
        self.counters["calls"] += 1
        self.counters["broadcasts_sent"] += len(batch)
