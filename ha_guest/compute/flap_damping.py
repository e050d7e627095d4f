"""Flap damping: a guest whose health flaps is one long incident, not hundreds.

Pure and clock-free (every entry point takes ``now``), like the heartbeat
monitor it sits behind. The monitor still decides every fault and recovery
at once; the damper decides which of them reach the controller:

* a fault while no incident is open opens one and is reported at once (no
  added detection latency);
* a fault while an incident is open, even one whose recovery is held, is
  folded into it: nothing is reported, and the held recovery is cancelled;
* a recovery is held until the guest has been steadily healthy (no fault)
  for the *hold-down*; then the open incident is reported recovered.

The hold-down grows with the instance's flap *penalty* (in the spirit of
BGP route-flap damping and Pacemaker's failure-timeout): every fault adds 1;
the penalty halves every ``half_life_s``; the hold-down is
``hold_down_s * 2 ** (penalty - 1)``, at most ``max_hold_down_s``. The penalty
is capped where the hold-down reaches its maximum, so that a guest that
flapped for hours is forgiven as fast as one that flapped for a minute.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class DampingPolicy:
    """The thresholds, from the [compute] flap_* options."""

    hold_down_s: float = 1.0  # 0: no damping, recoveries reported at once
    max_hold_down_s: float = 30.0
    half_life_s: float = 60.0

    @property
    def max_penalty(self) -> float:
        """The penalty at which the hold-down reaches its maximum."""
        if self.hold_down_s <= 0 or self.max_hold_down_s <= self.hold_down_s:
            return 1.0
        return 1.0 + math.log2(self.max_hold_down_s / self.hold_down_s)

    def hold_down(self, penalty: float) -> float:
        """Seconds of steady health that close an incident, for this penalty."""
        if self.hold_down_s <= 0:
            return 0.0
        return min(max(self.hold_down_s, self.max_hold_down_s), self.hold_down_s * 2.0 ** max(0.0, penalty - 1.0))


@dataclass(frozen=True)
class Incident:
    """An incident the controller was told about (its first fault's kind and reason)."""

    incident_id: str
    fault_kind: Optional[str]
    reason: str


@dataclass
class _Track:
    """One instance's damping state."""

    penalty: float = 0.0
    stamp: float = 0.0  # when the penalty was last brought up to date
    incident: Optional[Incident] = None  # open at the controller
    current: Optional[str] = None  # the monitor's own open incident inside it (None: healthy)
    close_at: Optional[float] = None  # when the held recovery is due
    healthy_since: float = 0.0
    folded: int = 0  # faults folded into the open incident


#: What ``due`` returns: the instance key, its incident, and since when it has been healthy.
Closed = Tuple[str, Incident, float]


class FlapDamper:
    """Per-instance hold-down between the monitors and the controller reports."""

    def __init__(self, policy: DampingPolicy) -> None:
        self.policy = policy
        self._tracks: Dict[str, _Track] = {}
        self._heap: List[Tuple[float, str]] = []  # (close_at, key); stale entries are skipped

    def fault(self, key: str, incident: Incident, now: float) -> bool:
        """The monitor raised ``incident``; True: report it, False: it is folded into the open incident."""
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _Track(stamp=now)
        opened = track.incident
        if opened is not None and incident.incident_id == opened.incident_id:
            return True  # the monitor confirms an open fault (after a restart): the controller dedupes it
        if incident.incident_id == track.current:
            return False  # the same confirmation, of a fault already folded in
        track.penalty = min(self.policy.max_penalty, self._decayed(track, now) + 1.0)
        track.stamp = now
        track.current = incident.incident_id
        track.close_at = None
        if opened is None:
            track.incident = incident
            track.folded = 0
            return True
        track.folded += 1
        return False

    def recovered(self, key: str, incident_id: Optional[str], now: float) -> Optional[str]:
        """The monitor ended ``incident_id``; return the incident id to report recovered now, None if held."""
        track = self._tracks.get(key)
        opened = track.incident if track is not None else None
        if track is None or opened is None or incident_id not in (opened.incident_id, track.current):
            return incident_id  # not one of ours (it began before we knew the instance): as it comes
        track.current = None
        hold = self.policy.hold_down(self._decayed(track, now))
        if hold <= 0:
            track.incident = None
            return opened.incident_id
        track.close_at = now + hold
        track.healthy_since = now
        heapq.heappush(self._heap, (track.close_at, key))
        return None

    def due(self, now: float) -> List[Closed]:
        """Close the incidents whose hold-down is over; return them (report each recovered)."""
        closed: List[Closed] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            track = self._tracks.get(key)
            if track is None or track.close_at != at or track.incident is None:
                continue  # a fault came back, or the instance went, since this was scheduled
            closed.append((key, track.incident, track.healthy_since))
            track.incident = None
            track.close_at = None
        return closed

    @property
    def next_due(self) -> float:
        """When ``due`` may next have something to close (inf: nothing held)."""
        return self._heap[0][0] if self._heap else math.inf

    def held(self, key: str) -> Optional[Incident]:
        """The incident open at the controller for this instance, if any."""
        track = self._tracks.get(key)
        return track.incident if track is not None else None

    def folded(self, key: str) -> int:
        """Faults folded into the instance's open incident so far."""
        track = self._tracks.get(key)
        return track.folded if track is not None else 0

    def hold_remaining(self, key: str, now: float) -> Optional[float]:
        """Seconds until the held recovery of this instance is reported, None if none is held."""
        track = self._tracks.get(key)
        if track is None or track.close_at is None:
            return None
        return max(0.0, track.close_at - now)

    def restored(self, key: str, incident: Incident, now: float) -> None:
        """An open incident came back from the state file (an agent restart): it is open, one flap old."""
        track = self._tracks.setdefault(key, _Track(stamp=now))
        track.incident = incident
        track.current = incident.incident_id
        track.close_at = None
        track.penalty = max(track.penalty, 1.0)
        track.stamp = now

    def ended(self, key: str) -> None:
        """The incident ended without a recovery (the guest exited): forget it, keep the penalty."""
        track = self._tracks.get(key)
        if track is not None:
            track.incident = track.current = track.close_at = None

    def forget(self, key: str) -> None:
        """The instance is gone: forget everything about it."""
        self._tracks.pop(key, None)

    def _decayed(self, track: _Track, now: float) -> float:
        half_life = self.policy.half_life_s
        if track.penalty <= 0 or half_life <= 0:
            return 0.0  # no half-life: no memory of earlier flaps
        return track.penalty * 0.5 ** (max(0.0, now - track.stamp) / half_life)
