"""A few threads on one bounded queue: where the recovery sinks make their API calls."""

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
    """Runs submitted calls on ``workers`` daemon threads; submit() never blocks.

    Daemon threads, because a call stuck in a socket must not keep the
    controller from exiting: every call is bounded by its HTTP timeouts
    anyway, and stop() waits only so long for them.
    """

    def __init__(self, name: str, workers: int, queue_size: int) -> None:
        self.name = name
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
            self._done()
            return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted call has finished; return whether that happened within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._unfinished:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self, timeout: float) -> bool:
        """Let queued calls finish for up to ``timeout`` s, then stop the threads; return whether all ended."""
        if not self._started:
            return True
        deadline = time.monotonic() + timeout
        for _ in self._threads:
            try:
                self._queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = sum(thread.is_alive() for thread in self._threads)
        if alive:
            LOG.error('%s: %d call(s) still running %.1fs after stop; abandoned', self.name, alive, timeout)
        return not alive

    def _done(self) -> None:
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
            except Exception:
                # The calls log their own outcome; this is the net under a bug in one of them.
                LOG.exception('%s: %s failed', self.name, getattr(call, '__name__', call))
            finally:
                self._done()
