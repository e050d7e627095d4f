"""The TickScheduler: one heap of due times drained by a periodic tick."""

from __future__ import annotations

from typing import List, Optional

import testtools

from ha_guest.compute.scheduler import RETRY_AFTER_ERROR_S, TickScheduler


class Item:
    """Ticks every ``step`` seconds and records when."""

    def __init__(self, name: str, due: Optional[float], step: float = 1.0, log: Optional[List[str]] = None,
                 fail: bool = False) -> None:
        self.name = name
        self.next_due = due
        self.step = step
        self.log = log if log is not None else []
        self.fail = fail

    def tick(self, now: float) -> Optional[float]:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError("boom")
        assert self.next_due is not None
        self.next_due += self.step
        return self.next_due


class TestTickScheduler(testtools.TestCase):

    def test_runs_due_items_in_due_order(self) -> None:
        log: List[str] = []
        scheduler = TickScheduler()
        for name, due in (("c", 3.0), ("a", 1.0), ("b", 2.0)):
            scheduler.schedule(Item(name, due, 10.0, log))
        self.assertEqual(2, scheduler.run_due(2.5))
        self.assertEqual(["a", "b"], log)
        self.assertEqual(1, scheduler.run_due(3.0))
        self.assertEqual(["a", "b", "c"], log)

    def test_rescheduled_items_run_again(self) -> None:
        item = Item("a", 0.0, 0.5)
        scheduler = TickScheduler()
        scheduler.schedule(item)
        for now in (0.0, 0.5, 1.0, 1.5):
            scheduler.run_due(now)
        self.assertEqual(4, len(item.log))

    def test_stale_entries_are_skipped(self) -> None:
        item = Item("a", 1.0)
        scheduler = TickScheduler()
        scheduler.schedule(item)
        item.next_due = None  # stopped
        self.assertEqual(0, scheduler.run_due(5.0))
        item.next_due = 7.0
        scheduler.schedule(item)
        self.assertEqual(0, scheduler.run_due(6.0))
        self.assertEqual(1, scheduler.run_due(7.0))

    def test_moved_item_runs_once_at_new_time(self) -> None:
        item = Item("a", 1.0)
        scheduler = TickScheduler()
        scheduler.schedule(item)
        item.next_due = 0.5
        scheduler.schedule(item)  # old entry at 1.0 is now stale
        self.assertEqual(1, scheduler.run_due(1.0))
        self.assertEqual(["a"], item.log)

    def test_failing_item_does_not_stop_others_and_is_retried(self) -> None:
        log: List[str] = []
        bad = Item("bad", 1.0, log=log, fail=True)
        good = Item("good", 1.0, log=log)
        scheduler = TickScheduler()
        scheduler.schedule(bad)
        scheduler.schedule(good)
        self.assertEqual(2, scheduler.run_due(1.0))
        self.assertEqual(["bad", "good"], log)
        self.assertEqual(1.0 + RETRY_AFTER_ERROR_S, bad.next_due)
        scheduler.run_due(1.0 + RETRY_AFTER_ERROR_S)
        self.assertEqual(2, log.count("bad"))

    def test_next_deadline_and_len(self) -> None:
        scheduler = TickScheduler()
        self.assertIsNone(scheduler.next_deadline())
        scheduler.schedule(Item("a", 4.0))
        scheduler.schedule(Item("b", None))  # not scheduled at all
        self.assertEqual(4.0, scheduler.next_deadline())
        self.assertEqual(1, len(scheduler))
