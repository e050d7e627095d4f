"""A histogram as plain counts: what the services observe into, and the collectors read at scrape time."""

from __future__ import annotations

import bisect
from typing import List, Sequence, Tuple

#: Heartbeat answers: from well under a millisecond (an idle host) to an interval (60 s at most).
ANSWER_LATENCY_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Report calls to the controller: a few milliseconds, up to the call timeout and its margin.
REPORT_LATENCY_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Buckets:
    """Counts of observations per upper bound, and their sum; written by one thread.

    ``observe`` is a bisect (in C) and two additions: cheap enough for every
    heartbeat answer. Readers on other threads copy ``counts``: each count
    only grows, so what they build from a copy is monotonic as Prometheus
    wants, even if the sum is a hair ahead of the counts.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError("bounds must be increasing and not empty")
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation (a value equal to a bound falls in that bound's bucket, as ``le`` says)."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> Tuple[List[Tuple[float, int]], int, float]:
        """Return ([(bound, observations <= bound)], count, sum); the count is the +Inf bucket."""
        counts, total = list(self.counts), self.sum
        running = 0
        out = []
        for bound, count in zip(self.bounds, counts[:-1], strict=True):
            running += count
            out.append((bound, running))
        return out, running + counts[-1], total
