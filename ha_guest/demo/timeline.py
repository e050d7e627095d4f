"""The demo's clock, its printed timeline and a thread-safe record of what each part saw."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Any, Callable, Optional, TextIO

from ha_guest.testing import wait_for


class DemoFailed(Exception):
    """An expected event did not happen in time (or a step went wrong)."""


@dataclasses.dataclass(frozen=True)
class Seen:
    """One observation: ``kind`` about ``instance`` at monotonic time ``t``."""

    kind: str
    instance: str
    t: float
    data: dict[str, Any]


class Timeline:
    """Prints lines stamped with milliseconds since the demo started."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.start = time.monotonic()
        # Wall-clock times (e.g. a fault's detected_at) are mapped onto the monotonic clock once.
        self._wall_offset = time.time() - time.monotonic()
        self.out = out

    def now(self) -> float:
        """Return the monotonic time."""
        return time.monotonic()

    def from_wall(self, epoch: float) -> float:
        """Return the monotonic time of a wall-clock time.time() value."""
        return epoch - self._wall_offset

    def ms(self, t: float) -> float:
        """Return ``t`` in ms since the start."""
        return (t - self.start) * 1000.0

    def say(self, text: str, t: Optional[float] = None, after: Optional[float] = None) -> None:
        """Print one line at time ``t`` (now by default), with '+N ms' after ``after`` if given."""
        t = time.monotonic() if t is None else t
        suffix = '' if after is None else '  (+%.0f ms)' % ((t - after) * 1000.0)
        print('[%7.0f ms] %s%s' % (self.ms(t), text, suffix), file=self.out, flush=True)

    def detail(self, text: str) -> None:
        """Print an indented line without a time stamp."""
        print('             %s' % text, file=self.out, flush=True)

    def heading(self, text: str) -> None:
        """Print a section title."""
        print('\n== %s' % text, file=self.out, flush=True)


class Recorder:
    """What the services saw, appended from any thread; waits are bounded."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seen: list[Seen] = []

    def record(self, kind: str, instance: str, t: Optional[float] = None, **data: Any) -> None:
        """Append an observation (``t``: when it happened, default now)."""
        item = Seen(kind, instance, time.monotonic() if t is None else t, data)
        with self._cond:
            self._seen.append(item)
            self._cond.notify_all()

    def mark(self) -> int:
        """Return a position: waits from it see only later observations."""
        with self._cond:
            return len(self._seen)

    def since(self, mark: int, kind: Optional[str] = None, instance: Optional[str] = None) -> list[Seen]:
        """Return the observations after ``mark``, optionally of one kind and instance."""
        with self._cond:
            return [s for s in self._seen[mark:] if kind in (None, s.kind) and instance in (None, s.instance)]

    def wait(self, kind: str, instance: str, mark: int, timeout: float, what: str,
             where: Callable[[Seen], bool] = lambda _: True) -> Seen:
        """Return the first matching observation after ``mark``; DemoFailed after ``timeout`` s."""
        def first() -> Optional[Seen]:
            return next((item for item in self._seen[mark:]
                         if item.kind == kind and item.instance == instance and where(item)), None)

        return wait_for(first, timeout, message=what, condition=self._cond, error=DemoFailed)
