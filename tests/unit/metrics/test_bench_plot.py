"""The benchmark plot's reading of the agent's answer latency histogram from a scrape."""

from __future__ import annotations

import testtools

from ha_guest.metrics.buckets import Buckets
from ha_guest.metrics.compute import C
from ha_guest.metrics.definitions import COMPUTE
from ha_guest.metrics.server import Families
from ha_guest.testing.bench_plot import answer_buckets
from tests.unit.metrics.scrape import scrape


class Histogram:
    def __init__(self, buckets: Buckets) -> None:
        self.buckets = buckets

    def collect(self) -> list:
        out = Families(COMPUTE)
        out.histogram(C + "answer_latency_seconds", self.buckets.cumulative())
        return list(out.collected())


class TestAnswerBuckets(testtools.TestCase):

    def test_per_bucket_counts_from_the_cumulative_ones(self) -> None:
        buckets = Buckets((0.001, 0.01))
        for seconds in (0.0005, 0.0007, 0.005, 0.5):
            buckets.observe(seconds)
        text, _ = scrape([Histogram(buckets)])
        self.assertEqual([(0.001, 2), (0.01, 1), (float("inf"), 1)], answer_buckets(text))

    def test_no_histogram(self) -> None:
        self.assertEqual([], answer_buckets("# nothing here\n"))
