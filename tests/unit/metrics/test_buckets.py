"""Buckets: the plain histogram the services observe into."""

from __future__ import annotations

import testtools

from ha_guest.metrics.buckets import ANSWER_LATENCY_S, REPORT_LATENCY_S, Buckets


class TestBuckets(testtools.TestCase):

    def test_cumulative_counts_le_each_bound(self) -> None:
        buckets = Buckets((0.1, 1.0))
        for value in (0.05, 0.1, 0.5, 1.0, 3.0):
            buckets.observe(value)
        self.assertEqual(([(0.1, 2), (1.0, 4)], 5, 4.65), buckets.cumulative()[:2] + (round(buckets.sum, 6),))

    def test_empty(self) -> None:
        self.assertEqual(([(1.0, 0)], 0, 0.0), Buckets([1.0]).cumulative())

    def test_bounds_must_increase(self) -> None:
        for bad in ((), (1.0, 0.5), (1.0, 1.0)):
            self.assertRaises(ValueError, Buckets, bad)

    def test_shipped_bounds_are_valid(self) -> None:
        for bounds in (ANSWER_LATENCY_S, REPORT_LATENCY_S):
            self.assertEqual(len(bounds) + 1, len(Buckets(bounds).counts))
