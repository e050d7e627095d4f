"""Which controller decides for the watchers: the live, settled controller with the smallest origin id.

Every controller beats on the peer-sync fanout. A peer is live while its
beats keep coming (``peer_timeout_s``). A controller is *ready* once it has
listened to its peers for ``settle_s`` after its start (so it knows the open
alarms before it may decide), and only ready controllers are candidates.
A controller acts one beat after it became ready, so that the previous
leader has heard that it no longer leads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional


@dataclass
class Peer:
    """A peer controller as its beats describe it."""

    origin: str
    seq: int
    ready: bool
    heard_at: float  # this controller's clock


class LeaderView:
    """Peers' liveness from their beats, and whether this controller leads."""

    def __init__(self, origin: str, started_at: float, settle_s: float, beat_interval_s: float,
                 peer_timeout_s: float) -> None:
        self.origin = origin
        self.started_at = started_at
        self.settle_s = settle_s
        self.beat_interval_s = beat_interval_s
        self.peer_timeout_s = peer_timeout_s
        self._lock = threading.Lock()
        self._peers: dict[str, Peer] = {}

    def heard(self, origin: str, seq: int, ready: bool, now: float) -> bool:
        """Record a peer's beat; False for a beat already heard (a replay) or older than one heard."""
        with self._lock:
            peer = self._peers.get(origin)
            if peer is not None and seq <= peer.seq:
                return False
            self._peers[origin] = Peer(origin, seq, ready, now)
            # Forget peers long gone (each restart is a new origin).
            for gone in [p.origin for p in self._peers.values() if now - p.heard_at > 20 * self.peer_timeout_s]:
                del self._peers[gone]
            return True

    def ready(self, now: float) -> bool:
        """Return whether this controller has listened long enough to be a candidate."""
        return now >= self.started_at + self.settle_s

    def live_peers(self, now: float) -> list[Peer]:
        """Return the peers heard within ``peer_timeout_s``."""
        with self._lock:
            return [p for p in self._peers.values() if now - p.heard_at <= self.peer_timeout_s]

    def leader(self, now: float) -> Optional[str]:
        """Return the origin of the leader as this controller sees it (None: no candidate yet)."""
        candidates = [p.origin for p in self.live_peers(now) if p.ready]
        if self.ready(now):
            candidates.append(self.origin)
        return min(candidates) if candidates else None

    def leads(self, now: float) -> bool:
        """Return whether this controller decides now (the leader, ready for at least one beat)."""
        return (self.leader(now) == self.origin
                and now >= self.started_at + self.settle_s + self.beat_interval_s)
