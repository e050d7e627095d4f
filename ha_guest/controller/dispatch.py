"""Hands registry changes to the fault sinks: per sink, bounded queues and threads (Workers) of its own.

A sink that says it may be called from several threads at once
(FaultSink.concurrent) gets ``lanes`` Workers; each instance's (or host's)
events always take the same lane, so every sink still sees a fault's raise
before its clear. Why: a notification waits about a millisecond for the
broker, so a storm of a thousand faults sent from one thread reaches
Vitrage over a second or two; four lanes send them in a quarter of that.
"""

from __future__ import annotations

import collections
import threading
import zlib
from collections.abc import Mapping
from typing import Any, Callable, Optional

from oslo_log import log as logging

from ha_guest.controller.announce_journal import AnnounceJournal
from ha_guest.sinks.action_pool import ActionPool
from ha_guest.sinks.base import FaultSink

LOG = logging.getLogger(__name__)


class Worker(ActionPool):
    """One thread on a bounded queue: submitted calls run one at a time, in order (a raise before its clear)."""

    def __init__(self, name: str, queue_size: int) -> None:
        super().__init__(name, 1, queue_size)


class Lanes:
    """One or more Workers of one sink; the events of one key always take the same Worker."""

    def __init__(self, name: str, lanes: int, queue_size: int) -> None:
        self._workers = [Worker(name if lanes == 1 else '%s-%d' % (name, i), queue_size) for i in range(lanes)]

    @property
    def failed(self) -> int:
        """Calls that raised, over every lane."""
        return sum(worker.failed for worker in self._workers)

    @property
    def dropped(self) -> int:
        """Calls dropped on a full queue, over every lane."""
        return sum(worker.dropped for worker in self._workers)

    def pending(self) -> int:
        """Calls waiting in every lane's queue."""
        return sum(worker.pending() for worker in self._workers)

    def start(self) -> None:
        """Start every lane's thread."""
        for worker in self._workers:
            worker.start()

    def submit(self, key: str, call: Callable[..., Any], *args: Any) -> bool:
        """Queue ``call(*args)`` on the lane of ``key``; False if that queue is full."""
        lane = zlib.crc32(key.encode('utf-8')) % len(self._workers) if len(self._workers) > 1 else 0
        return self._workers[lane].submit(call, *args)

    def stop(self, timeout: float) -> None:
        """Drain every lane (bounded by ``timeout`` each)."""
        for worker in self._workers:
            worker.stop(timeout)


class SinkDispatcher:
    """Gives every fault event to every sink, each through lanes of its own."""

    def __init__(self, sinks: Mapping[str, FaultSink], queue_size: int, lanes: int = 1,
                 journal: Optional[AnnounceJournal] = None) -> None:
        """``lanes``: Workers for each sink that may be called concurrently (one for the others).

        ``journal``: where each sink's taking of a ``raised`` is noted (a restarted controller skips it).
        """
        self.sinks = dict(sinks)
        self.journal = journal
        self.workers = {name: Lanes('sink-%s' % name, lanes if getattr(sink, 'concurrent', False) else 1,
                                    queue_size)
                        for name, sink in self.sinks.items()}
        #: ("raised" or "cleared", fault kind) -> faults handed to the sinks (the metrics read it).
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._counts_lock = threading.Lock()  # RPC server threads call in at once

    def start(self) -> None:
        """Start every sink's threads."""
        for worker in self.workers.values():
            worker.start()

    def fault_raised(self, fault: dict[str, Any]) -> frozenset[str]:
        """Queue fault_raised for every sink the journal does not name (each gets its own copy); return those it names.

        The journal names the sinks that took this incident's raise before the controller restarted.
        """
        journal = self.journal
        told = journal.told((fault['instance_uuid'], fault['incident_id'])) if journal is not None else frozenset()
        names = [name for name in self.sinks if name not in told]
        if names:
            self._count('raised', fault)
        for name in names:
            self.workers[name].submit(fault['instance_uuid'], self._raiser(name), dict(fault))
        return told.intersection(self.sinks)

    def _raiser(self, name: str) -> Callable[[dict[str, Any]], None]:
        """Return sink ``name``'s fault_raised, noted in the journal once it returned (a failure is not)."""
        sink, journal = self.sinks[name], self.journal
        if journal is None:
            return sink.fault_raised

        def fault_raised(fault: dict[str, Any]) -> None:  # the name the worker logs a failure under
            sink.fault_raised(fault)
            journal.record((fault['instance_uuid'], fault['incident_id']), name)

        return fault_raised

    def fault_cleared(self, fault: dict[str, Any], cleared: dict[str, Any]) -> None:
        """Queue fault_cleared for every sink (each gets its own copies)."""
        self._count('cleared', fault)
        for name, sink in self.sinks.items():
            self.workers[name].submit(fault['instance_uuid'], sink.fault_cleared, dict(fault), dict(cleared))

    def watch_event(self, event_type: str, payload: dict[str, Any]) -> None:
        """Queue a watcher's alarm for every sink that has the hook (a sink not built on FaultSink may lack it)."""
        key = str(payload.get('instance_uuid') or payload.get('host') or '')
        for name, sink in self.sinks.items():
            hook = getattr(sink, 'watch_event', None)
            if hook is not None:
                self.workers[name].submit(key, hook, event_type, dict(payload))

    def _count(self, what: str, fault: dict[str, Any]) -> None:
        with self._counts_lock:
            self.counts[(what, str(fault.get('kind')))] += 1

    def stop(self, timeout: float = 5.0) -> None:
        """Drain each sink's queue (bounded by ``timeout`` per sink), then close the sinks."""
        for name, worker in self.workers.items():
            worker.stop(timeout)
            try:
                self.sinks[name].close()
            except Exception:
                LOG.exception('sink %s: close failed', name)
