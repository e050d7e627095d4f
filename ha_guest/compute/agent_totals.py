"""What the compute agent's metrics count beyond its live instances (on the loop only).

The counters of a watched instance live on its monitor and channel, where
the heartbeat path increments them anyway; a scrape sums them (snapshot).
What would be lost that way is kept here: the counters of instances that
went away (so that totals never go down), monitor events by kind, and the
answer latency histogram, which the monitors feed only when the metrics
endpoint is on.
"""

from __future__ import annotations

import collections
from typing import Any, Dict, Iterable, Optional

from ha_guest.compute.heartbeat_monitor import EventKind, MonitorEvent
from ha_guest.metrics.buckets import ANSWER_LATENCY_S, Buckets

#: Monitor counters summed over instances (MonitorStats attribute names).
MONITOR_COUNTERS = ("challenges", "responses", "unhealthy_responses", "late_responses", "misses")
#: Channel counters summed over instances (ChannelWriter.counters keys).
CHANNEL_COUNTERS = ("rate_limited", "rate_limited_lines", "bytes_dropped", "protocol_errors", "overflows")


class AgentTotals:
    """Departed instances' counters, monitor events by kind, the answer latency histogram."""

    def __init__(self, latency: bool = False) -> None:
        #: Fed by every GuestMonitor.response when not None (the metrics endpoint is on).
        self.latency: Optional[Buckets] = Buckets(ANSWER_LATENCY_S) if latency else None
        #: (event kind, fault kind or "") -> events.
        self.events: "collections.Counter[tuple[str, str]]" = collections.Counter()
        self.retired: "collections.Counter[str]" = collections.Counter()

    def on_event(self, event: MonitorEvent) -> None:
        """Count one monitor event (rare: registrations, faults, recoveries, exits)."""
        kind = event.kind.value if isinstance(event.kind, EventKind) else str(event.kind)
        self.events[(kind, event.fault_kind or "")] += 1

    def retire(self, instance: Any) -> None:
        """Keep the counters of an instance whose channel is gone."""
        stats, counters = instance.monitor.stats, instance.channel.counters
        for name in MONITOR_COUNTERS:
            self.retired[name] += getattr(stats, name)
        for name in CHANNEL_COUNTERS:
            self.retired[name] += counters.get(name, 0)

    def snapshot(self, instances: Iterable[Any]) -> Dict[str, Any]:
        """Sum every counter over live and departed instances, count states (on the loop: a few ms per 1000)."""
        totals: Dict[str, int] = dict(self.retired)
        for name in MONITOR_COUNTERS + CHANNEL_COUNTERS:
            totals.setdefault(name, 0)
        states: "collections.Counter[str]" = collections.Counter()
        connected = 0
        for instance in instances:
            monitor, counters = instance.monitor, instance.channel.counters
            states[monitor.state.value] += 1
            connected += instance.channel.connected
            stats = monitor.stats
            for name in MONITOR_COUNTERS:
                totals[name] += getattr(stats, name)
            for name in CHANNEL_COUNTERS:
                totals[name] += counters.get(name, 0)
        return {"states": dict(states), "connected": connected, "counters": totals, "events": dict(self.events),
                "latency": self.latency.cumulative() if self.latency is not None else None}
