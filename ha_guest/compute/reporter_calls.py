"""Calls to the controller under a deadline of our own, on a client that is renewed when one hangs.

oslo.messaging's own timeout does not bound a call: on a RabbitMQ node that
hangs (SIGSTOP, a frozen VM) a call with ``timeout=5`` blocked for about 80 s
(see doc/source/compute.rst). So each call runs on a worker thread and the
caller waits for it at most ``deadline_s``. A call that misses its deadline
is abandoned: its client (transport, connections, threads) is left to the
stuck call and closed when that call finally returns, and the next call goes
out on a renewed client, whose transport starts at the next broker host.

What hangs is bounded: at most ``max_stuck`` abandoned calls (each holding
one thread and one client) exist at a time; past that, calls fail at once
with CallsStuck until one of them returns, and the caller retries later.
An abandoned call may still reach the controller: every report is
idempotent there (a repeated fault is a duplicate, a repeated clear a no-op).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable, Optional

from ha_guest.metrics.buckets import REPORT_LATENCY_S, Buckets

LOG = logging.getLogger(__name__)

#: Abandoned calls (one thread and one client each) that may exist at once.
MAX_STUCK = 3


class DeadlineMissed(Exception):
    """A call did not return within our own deadline; it was abandoned."""


class CallsStuck(Exception):
    """Too many abandoned calls are still stuck; no new client is opened until one returns."""


class DeadlineCaller:
    """Runs one call at a time on a worker thread of the current client; gives up at the deadline."""

    def __init__(self, client: Any, renew: Optional[Callable[[Any], Any]] = None, max_stuck: int = MAX_STUCK,
                 name: str = "ha-guest-report-call") -> None:
        """``renew(client)`` returns a fresh client; None: ``client.renewed()`` if it has one, else keep it."""
        self.client = client
        if renew is None and callable(getattr(client, "renewed", None)):
            renew = _renewed
        self._renew = renew
        self.max_stuck = max_stuck
        self.name = name
        self.counters = {"deadline_missed": 0, "renewed": 0, "stuck_returned": 0}
        #: Seconds each call took until it returned, raised or missed its deadline (the metrics read it).
        self.latency = Buckets(REPORT_LATENCY_S)
        self._lock = threading.Lock()
        self._stuck = 0
        self._generation = 0
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = self._new_executor()
        self._owned = False  # whether this caller opened self.client (and must close it)

    def _new_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        self._generation += 1
        return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="%s-%d" % (self.name, self._generation))

    @property
    def stuck(self) -> int:
        """Abandoned calls that have not returned yet."""
        with self._lock:
            return self._stuck

    def call(self, method: str, *args: Any, deadline_s: float, **kwargs: Any) -> Any:
        """Return ``client.<method>(*args, **kwargs)``; DeadlineMissed past ``deadline_s``, CallsStuck if bounded."""
        with self._lock:
            if self._executor is None:
                if self._stuck >= self.max_stuck:
                    raise CallsStuck("%d call(s) to the controller still stuck" % self._stuck)
                self._open_client()
            executor = self._executor
            client = self.client
        assert executor is not None
        started = time.monotonic()
        future = executor.submit(getattr(client, method), *args, **kwargs)
        try:
            return future.result(deadline_s)
        except concurrent.futures.TimeoutError:
            self._abandon(future, executor, client, method, deadline_s)
            raise DeadlineMissed("%s did not return within %.1f s" % (method, deadline_s)) from None
        finally:
            self.latency.observe(time.monotonic() - started)

    def close(self) -> None:
        """Stop the worker thread; close the client if this caller opened it (stuck ones close themselves)."""
        with self._lock:
            executor, self._executor = self._executor, None
            owned, self._owned = self._owned, False
            client = self.client
        if executor is not None:
            executor.shutdown(wait=False)
        if owned:
            _close(client)

    # -- abandoning a stuck call ----------------------------------------------------------------------

    def _abandon(self, future: "concurrent.futures.Future[Any]", executor: concurrent.futures.ThreadPoolExecutor,
                 client: Any, method: str, deadline_s: float) -> None:
        with self._lock:
            if self._executor is not executor:
                return  # closed meanwhile
            self.counters["deadline_missed"] += 1
            self._stuck += 1
            owned = self._owned
            self._executor = None  # the next call opens a fresh client (bounded by max_stuck)
            self._owned = False
        LOG.warning("%s to the controller did not return within %.1f s: abandoned (%d stuck); the next call "
                    "goes out on a new connection", method, deadline_s, self._stuck)
        executor.shutdown(wait=False)  # its thread ends when the stuck call returns
        future.add_done_callback(lambda _: self._returned(client if owned else None))

    def _returned(self, client: Any) -> None:
        with self._lock:
            self._stuck -= 1
            self.counters["stuck_returned"] += 1
        if client is not None:
            _close(client)  # in the stuck call's own thread, now free

    def _open_client(self) -> None:
        # Called with the lock held, after an abandon.
        if self._renew is not None:
            try:
                self.client = self._renew(self.client)
                self._owned = True
                self.counters["renewed"] += 1
            except Exception:  # noqa: BLE001 - keep the old client; the next deadline tries again
                LOG.exception("cannot open a new connection to the controller")
        elif self._stuck:
            # Nothing to renew with: the next call waits for the stuck one (one client, one thread).
            raise CallsStuck("the previous call to the controller is still stuck")
        self._executor = self._new_executor()


def _renewed(client: Any) -> Any:
    return client.renewed()


def _close(client: Any) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 - a transport that fails to close must not stop reporting
            LOG.debug("closing an abandoned controller client failed", exc_info=True)
