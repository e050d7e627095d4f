"""Per-guest heartbeat state machine, driven by a scheduler and a clock.

The monitor never reads a clock itself: every entry point takes ``now``
(monotonic seconds), so tests drive it with a fake clock and the compute
agent drives it from its single scheduler tick.
"""

from __future__ import annotations

import enum
import random
import secrets
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    from ha_guest.metrics.buckets import Buckets

#: How long a verdict is put off after a host stall: just past the current loop iteration.
_RECHECK_S = 0.001
_NONCE_CHARS = 16  # 64 random bits, as the protocol asks
_POOL_NONCES = 512


class _NoncePool:
    """Fresh nonces from the secrets module, drawn 512 at a time.

    One urandom call per 512 challenges instead of one per challenge; every
    nonce is still 64 bits the CSPRNG produced, used once.
    """

    def __init__(self) -> None:
        self._pool = ""
        self._pos = 0

    def take(self) -> str:
        pos = self._pos
        if pos >= len(self._pool):
            self._pool = secrets.token_hex(_NONCE_CHARS // 2 * _POOL_NONCES)
            pos = 0
        self._pos = pos + _NONCE_CHARS
        return self._pool[pos:pos + _NONCE_CHARS]


new_nonce = _NoncePool().take


class GuestState(str, enum.Enum):
    """Where a monitored guest stands."""

    UNREGISTERED = "unregistered"  # channel up, no heartbeat/init yet
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # answered, but said it is unhealthy
    FAILED = "failed"  # missed miss_threshold challenges in a row
    EXITED = "exited"  # the guest ended monitoring on purpose
    SUSPENDED = "suspended"  # paused, migrating, shutting down: not watched


class EventKind(str, enum.Enum):
    """What the monitor tells the rest of the compute agent."""

    REGISTERED = "registered"
    FAULT = "fault"
    RECOVERED = "recovered"
    EXITED = "exited"


MISSED = "missed"
UNHEALTHY = "unhealthy"

#: States in which challenges are sent and answers expected.
WATCHED = frozenset([GuestState.HEALTHY, GuestState.UNHEALTHY, GuestState.FAILED])


@dataclass(frozen=True)
class MonitorEvent:
    """A state change worth reporting to the controller."""

    kind: EventKind
    instance_uuid: str
    at: float  # monotonic seconds, as given by the caller
    incident_id: Optional[str] = None
    fault_kind: Optional[str] = None  # MISSED or UNHEALTHY for faults
    reason: str = ""
    interval_ms: int = 0
    misses: int = 0


@dataclass
class MonitorStats:
    """Counters of one guest, for state reports and benchmarks."""

    challenges: int = 0
    responses: int = 0
    unhealthy_responses: int = 0  # of the responses
    late_responses: int = 0
    misses: int = 0
    last_rtt: float = 0.0
    max_rtt: float = 0.0
    last_response_at: float = 0.0  # caller's (monotonic) time of the newest answer; 0.0: none yet


@dataclass
class HeartbeatPolicy:
    """Host-side limits applied to every guest."""

    miss_threshold: int = 1
    min_interval_ms: int = 100
    max_interval_ms: int = 60000
    #: Send a new registration's first challenge at a random point of its
    #: first interval, so guests that register together (an agent start)
    #: do not all share one tick for ever. Off: at once (tests).
    spread: bool = False
    #: A tick this many seconds behind the due time means the host itself
    #: stalled (a long loop iteration): answers may be waiting unread in the
    #: socket, so an unanswered challenge is judged one short delay later,
    #: after the loop has read them. None: judge at once (tests).
    late_s: Optional[float] = None

    def clamp(self, interval_ms: int) -> int:
        """Return the interval the host grants for a requested one."""
        return max(self.min_interval_ms, min(self.max_interval_ms, interval_ms))

    def first_due(self, now: float, interval_ms: int) -> float:
        """When the first challenge of a registration is due."""
        return now + random.random() * interval_ms / 1000.0 if self.spread else now


SendChallenge = Callable[[str], None]
Emit = Callable[[MonitorEvent], None]


@dataclass
class GuestMonitor:
    """Heartbeat state of one instance; the scheduler calls ``tick`` when due."""

    instance_uuid: str
    send_challenge: SendChallenge
    emit: Emit
    policy: HeartbeatPolicy = field(default_factory=HeartbeatPolicy)
    state: GuestState = GuestState.UNREGISTERED
    interval_ms: int = 0
    next_due: Optional[float] = None
    incident_id: Optional[str] = None
    fault_kind: Optional[str] = None
    reason: str = ""
    stats: MonitorStats = field(default_factory=MonitorStats)
    #: Answer latencies go here when set (the agent's metrics are on; see compute/agent_totals.py).
    latency: Optional["Buckets"] = None
    _nonce: Optional[str] = None
    _sent_at: float = 0.0
    _missed_in_row: int = 0
    _resume_state: GuestState = GuestState.UNREGISTERED
    # Set by restore() when an open fault came from the state file: the next
    # verdict re-sends it under the same incident id, since the report may
    # have been lost with the previous process (the controller dedupes).
    _reconfirm: bool = False
    _deferred: bool = False  # the current verdict was put off once already
    _hold_until: float = float("-inf")  # no misses are counted before this time
    _registered: bool = False  # register()/restore() until exit() or unregister()

    @property
    def registered(self) -> bool:
        """Whether the guest is registered (also while suspended): only exit or unregister() ends it."""
        return self._registered

    def register(self, interval_ms: int, now: float) -> int:
        """Start watching with the granted interval, or re-register (see _reregister); return it."""
        if self._registered:
            return self._reregister(self.policy.clamp(interval_ms), now)
        self._registered = True
        self.interval_ms = self.policy.clamp(interval_ms)
        self._nonce = None
        self._missed_in_row = 0
        # A re-registration does not clear a fault: only an answer does.
        if self.persistent_state not in (GuestState.UNHEALTHY, GuestState.FAILED):
            self._set_state(GuestState.HEALTHY)
        # While suspended the registration is kept for resume(), nothing is sent.
        self.next_due = None if self.state == GuestState.SUSPENDED else self.policy.first_due(now, self.interval_ms)
        self.emit(MonitorEvent(EventKind.REGISTERED, self.instance_uuid, now, interval_ms=self.interval_ms))
        return self.interval_ms

    def _reregister(self, interval_ms: int, now: float) -> int:
        """An init while registered: the new interval applies, nothing else is forgiven.

        The miss count, the open challenge and its deadline stay, so re-sending
        init cannot hide a hang; the deadline may only come sooner (a shorter
        interval). REGISTERED is emitted only if the interval (which the state
        file keeps) changed, so repeated inits cause no state file write.
        """
        changed = interval_ms != self.interval_ms
        self.interval_ms = interval_ms
        if self.next_due is not None:
            self.next_due = min(self.next_due, now + interval_ms / 1000.0)
        if changed:
            self.emit(MonitorEvent(EventKind.REGISTERED, self.instance_uuid, now, interval_ms=interval_ms))
        return interval_ms

    def tick(self, now: float) -> Optional[float]:
        """Count a miss if the last challenge is unanswered, send the next one."""
        if self.state not in WATCHED or self.next_due is None:
            return None
        if self._nonce is not None and now >= self._hold_until:
            late = self.policy.late_s
            if late is not None and not self._deferred and now - self.next_due > late:
                self._deferred = True
                self.next_due = now + _RECHECK_S
                return self.next_due
            self._count_miss(now)
        self._deferred = False
        self._nonce = new_nonce()
        self._sent_at = now
        self.stats.challenges += 1
        self.send_challenge(self._nonce)
        # Fixed cadence from the previous due time, so jitter doesn't drift;
        # after a stall, restart the cadence from now instead of bursting.
        step = self.interval_ms / 1000.0
        due = self.next_due + step
        self.next_due = due if due > now else now + step
        return self.next_due

    def hold_verdicts(self, until: float) -> None:
        """Count no miss before ``until`` (the channel dropped; discovery may yet explain why)."""
        self._hold_until = max(self._hold_until, until)

    def _count_miss(self, now: float) -> None:
        self.stats.misses += 1
        self._missed_in_row += 1
        if self._missed_in_row < self.policy.miss_threshold:
            return
        if self.state != GuestState.FAILED:
            if self.state == GuestState.UNHEALTHY:
                self._clear(now)  # like FAILED -> UNHEALTHY: one incident per kind
            reason = "no answer to %d challenge(s) of %d ms" % (self._missed_in_row, self.interval_ms)
            self._raise(MISSED, reason, now)
            self.state = GuestState.FAILED
        elif self._reconfirm:
            self._reconfirm = False
            self._emit_fault(now)

    def response(self, nonce: str, healthy: bool, reason: str, now: float) -> bool:
        """Take an answer; return False if it was not for the open challenge."""
        if self.state not in WATCHED or nonce != self._nonce:
            self.stats.late_responses += 1
            return False
        self._nonce = None
        self._missed_in_row = 0
        self.stats.responses += 1
        rtt = now - self._sent_at
        self.stats.last_rtt = rtt
        self.stats.last_response_at = now
        if rtt > self.stats.max_rtt:
            self.stats.max_rtt = rtt
        latency = self.latency
        if latency is not None:
            latency.observe(rtt)
        reconfirm, self._reconfirm = self._reconfirm, False
        if healthy:
            if self.state != GuestState.HEALTHY:
                self._clear(now)
            self.state = GuestState.HEALTHY
            return True
        self.stats.unhealthy_responses += 1
        if self.state != GuestState.UNHEALTHY:
            if self.state == GuestState.FAILED:
                self._clear(now)  # the missed incident ends; a new one begins
            self._raise(UNHEALTHY, reason or "guest reported unhealthy", now)
            self.state = GuestState.UNHEALTHY
        elif reconfirm:
            self._emit_fault(now)
        return True

    def exit(self, reason: str, now: float) -> None:
        """The guest ended monitoring: never a fault, and it clears any fault."""
        self._set_state(GuestState.EXITED)
        self._registered = False
        self._stop_watching()
        self.incident_id = None
        self.fault_kind = None
        self.reason = ""
        self._reconfirm = False
        self.emit(MonitorEvent(EventKind.EXITED, self.instance_uuid, now, reason=reason))

    def suspend(self, now: float) -> None:
        """Stop watching while the domain is paused, migrating or stopping."""
        if self.state == GuestState.SUSPENDED:
            return
        self._resume_state = self.state
        self.state = GuestState.SUSPENDED
        self._stop_watching()

    def resume(self, now: float) -> None:
        """Watch again after a suspension; the cadence restarts from now."""
        if self.state != GuestState.SUSPENDED:
            return
        self.state = self._resume_state
        self._missed_in_row = 0
        if self.state in WATCHED and self._registered:  # an unregistered guest's open fault is not watched
            self.next_due = now

    def unregister(self) -> None:
        """Stop watching until the guest registers again; an open fault stays open."""
        if self.persistent_state not in (GuestState.UNHEALTHY, GuestState.FAILED):
            self._set_state(GuestState.UNREGISTERED)
        self._registered = False
        self._stop_watching()

    def _set_state(self, state: GuestState) -> None:
        # A suspended guest keeps SUSPENDED; what changes is where resume() leads.
        if self.state == GuestState.SUSPENDED:
            self._resume_state = state
        else:
            self.state = state

    def restore(self, interval_ms: int, incident_id: Optional[str], fault_kind: Optional[str], reason: str,
                now: float, grace_s: float = 0.0) -> None:
        """Watch a guest registered before an agent restart, with its open fault if any.

        The first challenge goes out after ``grace_s`` (at least one interval):
        a guest agent whose host went away reopens the port with a backoff
        (up to 2 s), so a healthy guest is never blamed for our restart. A
        guest that answers the new session's hello registers afresh before
        that; one that does not (hung) is challenged once the grace is over.
        """
        self.interval_ms = self.policy.clamp(interval_ms)
        self._registered = True
        self._nonce = None
        self._missed_in_row = 0
        if incident_id and fault_kind in (MISSED, UNHEALTHY):
            self.incident_id = incident_id
            self.fault_kind = fault_kind
            self.reason = reason
            self.state = GuestState.FAILED if fault_kind == MISSED else GuestState.UNHEALTHY
            self._reconfirm = True
        else:
            self.state = GuestState.HEALTHY
        self.next_due = self.policy.first_due(now + max(grace_s, self.interval_ms / 1000.0), self.interval_ms)

    @property
    def persistent_state(self) -> GuestState:
        """The state to keep across a restart: a suspended guest's state before it was suspended."""
        return self._resume_state if self.state == GuestState.SUSPENDED else self.state

    def _stop_watching(self) -> None:
        self._nonce = None
        self.next_due = None
        self._missed_in_row = 0

    def _raise(self, kind: str, reason: str, now: float) -> None:
        self.incident_id = uuid.uuid4().hex
        self.fault_kind = kind
        self.reason = reason
        self._reconfirm = False
        self._emit_fault(now)

    def _emit_fault(self, now: float) -> None:
        self.emit(
            MonitorEvent(
                EventKind.FAULT, self.instance_uuid, now, self.incident_id, self.fault_kind, self.reason,
                self.interval_ms, self._missed_in_row,
            )
        )

    def _clear(self, now: float) -> None:
        if self.incident_id is None:
            return
        event = MonitorEvent(
            EventKind.RECOVERED, self.instance_uuid, now, self.incident_id, self.fault_kind, self.reason,
            self.interval_ms,
        )
        self.incident_id = None
        self.fault_kind = None
        self.reason = ""
        self._reconfirm = False
        self.emit(event)
