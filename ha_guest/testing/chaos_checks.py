"""The chaos drills' bookkeeping: a scenario's verdict, doubles among events, bounded waits for events."""

from __future__ import annotations

import collections
import time
from typing import Any, Optional


def duplicates(events: list[tuple[float, dict[str, Any]]], key: str = 'instance_uuid') -> dict[str, int]:
    """Instances (or another key) with more than one event: how many each."""
    counts = collections.Counter(str(p.get(key)) for _, p in events)
    return {k: n for k, n in counts.items() if n > 1}


class Verdict:
    """A scenario's figures and failed expectations (a drill goes on after a failed one, to measure the rest).

    Lost, doubled or false reports always fail a scenario. A latency over its target (``at_most``) fails it
    only with ``enforce_targets``; otherwise it is listed in ``targets_missed`` (the figures of a shared,
    loaded machine are not the product's).
    """

    def __init__(self, enforce_targets: bool = True) -> None:
        self.figures: dict[str, Any] = {}
        self.failures: list[str] = []
        self.targets_missed: list[str] = []
        self.enforce_targets = enforce_targets

    def expect(self, ok: bool, text: str) -> bool:
        """Record ``text`` as a failure unless ``ok``; return ``ok``."""
        if not ok:
            self.failures.append(text)
        return ok

    def at_most(self, name: str, value: Optional[float], limit: float, unit: str = '') -> None:
        """Expect figure ``name`` (recorded) to exist and be <= ``limit``."""
        self.figures[name] = value
        if value is not None and value <= limit:
            return
        text = '%s = %s%s, target <= %s%s' % (name, value, unit, limit, unit)
        if value is None or self.enforce_targets:
            self.failures.append(text)  # no figure at all: nothing arrived, which is a loss
        else:
            self.targets_missed.append(text)

    def equal(self, name: str, value: Any, wanted: Any) -> None:
        """Expect figure ``name`` (recorded) to equal ``wanted``."""
        self.figures[name] = value
        self.expect(value == wanted, '%s = %r, expected %r' % (name, value, wanted))


def wait_events(rig: Any, event_type: str, instances: Any, since: float, timeout: float,
                key: str = 'instance_uuid') -> dict[str, tuple[float, dict[str, Any]]]:
    """Wait (bounded, no error) until every one of ``instances`` had an ``event_type`` after ``since``."""
    wanted = set(instances)

    def found() -> dict[str, tuple[float, dict[str, Any]]]:
        first: dict[str, tuple[float, dict[str, Any]]] = {}
        for t, payload in rig.events(event_type):
            if t >= since and payload.get(key) in wanted:
                first.setdefault(str(payload.get(key)), (t, payload))
        return first

    deadline = time.monotonic() + timeout
    while len(found()) < len(wanted) and time.monotonic() < deadline:
        rig.check()
        time.sleep(0.05)
    return found()
