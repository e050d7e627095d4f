"""Threads on one bounded queue: where the sinks' work and the controller's peer casts run."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_STOP = object()


class ActionPool:
    """Runs submitted calls on ``workers`` daemon threads; with one worker, in the order submitted.

    submit() never blocks: a full queue drops the call (and logs an error, unless
    ``log_drops`` is false because the caller reports it), so a stuck target never
    holds up an RPC reply. A call that raises is logged and the next one runs.
    Daemon threads, because a call stuck in a socket must not keep the controller
    from exiting: stop() waits only so long for them.
    """

    def __init__(self, name: str, workers: int, queue_size: int, log_drops: bool = True) -> None:
        self.name = name
        self.log_drops = log_drops
        self.dropped = 0
        self.failed = 0
        self.done = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._threads = [threading.Thread(target=self._run, name='ha-guest-%s-%d' % (name, i), daemon=True)
                         for i in range(workers)]
        self._idle = threading.Condition()
        self._unfinished = 0
        self._started = False

    def start(self) -> None:
        """Start the threads."""
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def submit(self, call: Callable[..., Any], *args: Any) -> bool:
        """Queue ``call(*args)``; return False if the queue is full."""
        with self._idle:
            self._unfinished += 1
        try:
            self._queue.put_nowait((call, args))
        except queue.Full:
            self._finished()
            self.dropped += 1
            if self.log_drops:
                LOG.error('%s: queue full (%d waiting), dropped %s; %d dropped so far',
                          self.name, self._queue.maxsize, getattr(call, '__name__', call), self.dropped)
            return False
        return True

    def pending(self) -> int:
        """Return how many calls wait in the queue."""
        return self._queue.qsize()

    def alive(self) -> bool:
        """Return whether any of the threads still runs."""
        return any(thread.is_alive() for thread in self._threads)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted call has finished; return whether that happened within ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._unfinished, timeout)

    def stop(self, timeout: float) -> bool:
        """Let queued calls finish for up to ``timeout`` s, then stop the threads; return whether all ended."""
        if not self._started:
            return True
        deadline = time.monotonic() + timeout
        for _ in self._threads:
            try:
                self._queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                LOG.error('%s: still %d call(s) queued at stop; they are lost', self.name, self._queue.qsize())
                break
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = sum(thread.is_alive() for thread in self._threads)
        if alive:
            LOG.error('%s: %d thread(s) still busy %.1fs after stop; abandoned', self.name, alive, timeout)
        return not alive

    def _finished(self) -> None:
        with self._idle:
            self._unfinished -= 1
            if not self._unfinished:
                self._idle.notify_all()

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
                # Sinks log their own outcome; this is the net under a bug in one of them.
                self.failed += 1
                LOG.exception('%s: %s failed', self.name, getattr(call, '__name__', call))
            finally:
                self._finished()
