"""What the compute agent keeps per watched instance, and the snapshot it gives out."""

from __future__ import annotations

import dataclasses
from typing import Optional

from ha_guest.compute.channel import GuestChannel
from ha_guest.compute.discovery.base import LEGACY_FEATURES, Features
from ha_guest.compute.heartbeat_monitor import GuestMonitor, GuestState


@dataclasses.dataclass(frozen=True)
class InstanceStats:
    """A snapshot of one watched instance: heartbeat state, interval and counters since it was first seen."""

    state: GuestState
    interval_ms: int
    challenges: int
    responses: int
    misses: int
    max_rtt_ms: float
    #: Whether the compute agent is connected to the instance's channel socket now.
    connected: bool
    #: What the instance's flavor enabled.
    features: Features = LEGACY_FEATURES


class Instance:
    """What the loop keeps per instance."""

    __slots__ = ("channel", "monitor", "suspended", "since", "registered", "registered_at")

    def __init__(self, channel: GuestChannel, monitor: GuestMonitor, since: Optional[float] = None) -> None:
        self.channel = channel
        self.monitor = monitor
        self.suspended: Optional[str] = None
        #: Wall clock since when it runs here with its channel (None while suspended); see state_records.py.
        self.since = since
        #: Whether its guest registered (or was restored as registered) since the channel was found.
        self.registered = False
        #: Wall clock of its guest's first registration in this process (None: not seen registering here).
        self.registered_at: Optional[float] = None

    def snapshot(self) -> InstanceStats:
        """Return this instance's InstanceStats (on the loop)."""
        monitor, stats = self.monitor, self.monitor.stats
        return InstanceStats(monitor.state, monitor.interval_ms, stats.challenges, stats.responses, stats.misses,
                             stats.max_rtt * 1000.0, self.channel.connected, self.channel.features)
