"""One timer for every guest: a heap of due times drained by a periodic tick."""

from __future__ import annotations

import heapq
import itertools
import logging
from typing import List, Optional, Protocol, Tuple

LOG = logging.getLogger(__name__)

#: After an item's tick raised, try it again this much later.
RETRY_AFTER_ERROR_S = 1.0


class Schedulable(Protocol):
    """Something with a due time that reschedules itself when ticked."""

    next_due: Optional[float]

    def tick(self, now: float) -> Optional[float]:
        """Do the due work; return the next due time or None to stop."""


class TickScheduler:
    """Run every item whose due time has come, in due order.

    Entries are never removed from the heap when an item is rescheduled or
    stopped; instead each entry remembers the due time it was pushed with and
    is ignored if the item's ``next_due`` has moved on. That keeps scheduling
    O(log n) with no per-guest timer objects.
    """

    def __init__(self) -> None:
        self._heap: List[Tuple[float, int, Schedulable]] = []
        self._counter = itertools.count()

    def schedule(self, item: Schedulable) -> None:
        """(Re)insert an item at its current ``next_due``."""
        if item.next_due is not None:
            heapq.heappush(self._heap, (item.next_due, next(self._counter), item))

    def run_due(self, now: float) -> int:
        """Tick every item due at ``now``; return how many were ticked."""
        ticked = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, item = heapq.heappop(heap)
            if item.next_due != due:
                continue  # stale entry: rescheduled or stopped since
            try:
                following = item.tick(now)
            except Exception:  # noqa: BLE001 - one broken item must not stop the others
                LOG.exception("scheduled item %r failed", item)
                following = item.next_due = now + RETRY_AFTER_ERROR_S
            ticked += 1
            if following is not None:
                heapq.heappush(heap, (following, next(self._counter), item))
        return ticked

    def next_deadline(self) -> Optional[float]:
        """The earliest due time in the heap (maybe stale), or None."""
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
