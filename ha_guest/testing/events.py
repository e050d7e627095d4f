"""What the scripted host saw: a thread-safe event list and the record of every challenge."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ha_guest.testing.waiting import wait_for

_T = TypeVar('_T')

# Event kinds recorded by the scripted host.
CONNECTED = 'connected'
DISCONNECTED = 'disconnected'
HELLO_ACK = 'hello_ack'
REGISTERED = 'registered'
HEALTHY = 'healthy'
UNHEALTHY = 'unhealthy'
MISSED = 'missed'
EXITED = 'exited'
ERROR = 'error'
BROADCAST = 'broadcast'
STATUS_REQUEST = 'status_request'
#: A heartbeat init or response (or an SGM request) refused as not enabled for the instance.
NOT_ENABLED = 'not_enabled'
#: A response whose nonce the current session never sent (or answered twice).
UNKNOWN_NONCE = 'unknown_nonce'


@dataclasses.dataclass(frozen=True)
class Event:
    """One thing the host saw; ``t`` is time.monotonic() when it was seen."""

    kind: str
    t: float
    host: str
    session: str | None
    data: dict[str, Any]

    def __str__(self) -> str:
        extra = ' '.join('%s=%r' % item for item in sorted(self.data.items()))
        return '%.3f %s %s %s' % (self.t, self.host, self.kind, extra)


@dataclasses.dataclass
class ChallengeRecord:
    """One challenge the host sent and what became of it."""

    host: str
    session: str
    nonce: str
    seq: int
    sent_at: float
    answered_at: float | None = None
    health: str | None = None
    reason: str = ''
    missed: bool = False
    #: The answer came after the next challenge had gone out (the miss counted already).
    late: bool = False

    @property
    def on_time(self) -> bool:
        """Return whether the right answer came before the next challenge."""
        return self.answered_at is not None and not self.late

    @property
    def reply_ms(self) -> float | None:
        """Return the round trip in milliseconds, if answered."""
        if self.answered_at is None:
            return None
        return (self.answered_at - self.sent_at) * 1000.0


class EventLog:
    """Events and challenge records of one or more scripted hosts; every method is thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._challenges: list[ChallengeRecord] = []

    def add(self, kind: str, host: str, session: str | None, **data: Any) -> Event:
        """Record an event now and wake every waiter."""
        event = Event(kind, time.monotonic(), host, session, data)
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()
        return event

    def add_challenge(self, record: ChallengeRecord) -> None:
        """Record a challenge that was sent."""
        with self._cond:
            self._challenges.append(record)
            self._cond.notify_all()

    def changed(self) -> None:
        """Wake waiters after a challenge record was updated in place."""
        with self._cond:
            self._cond.notify_all()

    def mark(self) -> int:
        """Return the number of events so far, to wait only for later ones."""
        with self._cond:
            return len(self._events)

    def events(self, kind: str | None = None, host: str | None = None, since: int = 0) -> list[Event]:
        """Return a copy of the events, optionally filtered."""
        with self._cond:
            return [e for e in self._events[since:]
                    if (kind is None or e.kind == kind) and (host is None or e.host == host)]

    def challenges(self, host: str | None = None, session: str | None = None) -> list[ChallengeRecord]:
        """Return copies of the challenge records, optionally filtered."""
        with self._cond:
            return [dataclasses.replace(c) for c in self._challenges
                    if (host is None or c.host == host) and (session is None or c.session == session)]

    def wait_until(self, predicate: Callable[[], _T], timeout: float, what: str = 'condition') -> _T:
        """Wait until ``predicate()`` returns something truthy and return it; WaitTimeout on timeout.

        The predicate runs with the log's lock held, each time something was recorded.
        """
        def described() -> str:
            return '%s; last events:\n  %s' % (what, '\n  '.join(str(e) for e in self._events[-15:]))

        return wait_for(predicate, timeout, message=described, condition=self._cond)

    def wait_for(self, kind: str, host: str | None = None, since: int = 0, timeout: float = 5.0,
                 where: Callable[[Event], bool] | None = None) -> Event:
        """Wait for the first event of ``kind`` at index ``since`` or later that matches ``where``."""
        def find() -> Event | None:
            for event in self._events[since:]:
                if event.kind == kind and (host is None or event.host == host) and (where is None or where(event)):
                    return event
            return None

        event = self.wait_until(find, timeout, 'a %r event%s' % (kind, ' of %s' % host if host else ''))
        assert event is not None
        return event
