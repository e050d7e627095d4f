"""Hands registry changes to the fault sinks: one bounded queue and one thread (a Worker) per sink."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oslo_log import log as logging

from ha_guest.sinks.action_pool import ActionPool
from ha_guest.sinks.base import FaultSink

LOG = logging.getLogger(__name__)


class Worker(ActionPool):
    """One thread on a bounded queue: submitted calls run one at a time, in order (a raise before its clear)."""

    def __init__(self, name: str, queue_size: int) -> None:
        super().__init__(name, 1, queue_size)


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

    def watch_event(self, event_type: str, payload: dict[str, Any]) -> None:
        """Queue a watcher's alarm for every sink that has the hook (a sink not built on FaultSink may lack it)."""
        for name, sink in self.sinks.items():
            hook = getattr(sink, 'watch_event', None)
            if hook is not None:
                self.workers[name].submit(hook, event_type, dict(payload))

    def stop(self, timeout: float = 5.0) -> None:
        """Drain each sink's queue (bounded by ``timeout`` per sink), then close the sinks."""
        for name, worker in self.workers.items():
            worker.stop(timeout)
            try:
                self.sinks[name].close()
            except Exception:
                LOG.exception('sink %s: close failed', name)
