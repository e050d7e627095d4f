"""The controller's collector: reads the registry, the sink dispatcher and the SGM router when scraped."""

from __future__ import annotations

import collections
from typing import Any, Iterable

from ha_guest.metrics import definitions
from ha_guest.metrics.server import Families
from ha_guest.sinks.recovery import ActionSink

R = "ha_guest_controller_"
PEER_SYNC = "peer-sync"


class ControllerCollector:
    """A prometheus_client collector over one ControllerManager."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    def describe(self) -> Iterable[Any]:
        """Nothing: registering must not read the registry."""
        return []

    def collect(self) -> Iterable[Any]:
        """Return every controller metric family, filled."""
        manager = self.manager
        out = Families(definitions.CONTROLLER)
        with manager.registry.lock:
            open_faults = collections.Counter(str(fault.get("kind")) for fault in manager.registry.list())
        dispatcher = manager.dispatcher
        counts = dict(dispatcher.counts)
        for kind in definitions.FAULT_KINDS:
            out.add(R + "open_faults", open_faults.get(kind, 0), kind=kind)
            out.add(R + "faults_raised_total", counts.get(("raised", kind), 0), kind=kind)
            out.add(R + "faults_cleared_total", counts.get(("cleared", kind), 0), kind=kind)
        # One series per configured sink, and the worker that casts to the peer controllers.
        workers = [(name, lanes.pending(), lanes.failed, lanes.dropped) for name, lanes in dispatcher.workers.items()]
        peer = manager.peer_worker
        workers.append((PEER_SYNC, peer.pending(), peer.failed, peer.dropped))
        for name, pending, failed, dropped in workers:
            out.add(R + "sink_queue_depth", pending, sink=name)
            out.add(R + "sink_failures_total", failed, sink=name)
            out.add(R + "sink_drops_total", dropped, sink=name)
        for name, sink in dispatcher.sinks.items():
            if isinstance(sink, ActionSink):
                decided = dict(sink.counts)
                for outcome in definitions.CONTROLLER_RECOVERY_OUTCOMES:
                    out.add(R + "recovery_actions_total", decided.get(outcome, 0), sink=name, outcome=outcome)
        stats = manager.router.stats()
        for outcome in definitions.by_name()[R + "sgm_broadcasts_total"].labels["outcome"]:
            out.add(R + "sgm_broadcasts_total", stats["broadcasts"].get(outcome, 0), outcome=outcome)
        for outcome in definitions.by_name()[R + "sgm_nova_events_total"].labels["outcome"]:
            out.add(R + "sgm_nova_events_total", stats["events"].get(outcome, 0), outcome=outcome)
        return out.collected()
