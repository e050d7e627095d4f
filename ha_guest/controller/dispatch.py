"""Hands registry changes to the fault sinks: one bounded queue and one thread per sink."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from oslo_log import log as logging

from ha_guest.sinks.base import FaultSink

LOG = logging.getLogger(__name__)

_STOP = object()


class Worker:
    """Runs submitted calls one at a time, in order, in its own thread.

    submit() never blocks: a full queue drops the call and logs an error, so
    a stuck target never holds up an RPC reply. A call that raises is logged
    and the next one runs.
    """

    def __init__(self, name: str, queue_size: int) -> None:
        self.name = name
        self.dropped = 0
        self.failed = 0
        self.done = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name='ha-guest-%s' % name, daemon=True)
        self._started = False

    def start(self) -> None:
        """Start the worker thread."""
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, call: Callable[..., Any], *args: Any) -> bool:
        """Queue ``call(*args)``; return False (and log) if the queue is full."""
        try:
            self._queue.put_nowait((call, args))
        except queue.Full:
            self.dropped += 1
            LOG.error('%s: queue full (%d waiting), dropped %s; %d dropped so far',
                      self.name, self._queue.maxsize, getattr(call, '__name__', call), self.dropped)
            return False
        return True

    def pending(self) -> int:
        """Return how many calls wait in the queue."""
        return self._queue.qsize()

    def stop(self, timeout: float) -> bool:
        """Let the queued calls run for up to ``timeout`` s, then stop; return whether it finished."""
        if not self._started:
            return True
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            LOG.error('%s: still %d events queued at stop; they are lost', self.name, self._queue.qsize())
            return False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            LOG.error('%s: did not finish its queued events within %.1fs of stop', self.name, timeout)
            return False
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            call, args = item
            try:
                call(*args)
                self.done += 1
            except Exception:
                self.failed += 1
                LOG.exception('%s: %s failed', self.name, getattr(call, '__name__', call))


class SinkDispatcher:
    """Gives every fault event to every sink, each through its own Worker."""

    def __init__(self, sinks: Mapping[str, FaultSink], queue_size: int) -> None:
        self.sinks = dict(sinks)
        self.workers = {name: Worker('sink-%s' % name, queue_size) for name in self.sinks}

    def start(self) -> None:
        """Start one thread per sink."""
        for worker in self.workers.values():
            worker.start()

    def fault_raised(self, fault: dict[str, Any]) -> None:
        """Queue fault_raised for every sink (each gets its own copy)."""
        for name, sink in self.sinks.items():
            self.workers[name].submit(sink.fault_raised, dict(fault))

    def fault_cleared(self, fault: dict[str, Any], cleared: dict[str, Any]) -> None:
        """Queue fault_cleared for every sink (each gets its own copies)."""
        for name, sink in self.sinks.items():
            self.workers[name].submit(sink.fault_cleared, dict(fault), dict(cleared))

    def stop(self, timeout: float = 5.0) -> None:
        """Drain each sink's queue (bounded by ``timeout`` per sink), then close the sinks."""
        for name, worker in self.workers.items():
            worker.stop(timeout)
            try:
                self.sinks[name].close()
            except Exception:
                LOG.exception('sink %s: close failed', name)
