"""TokenBucket with a fake clock."""

from __future__ import annotations

import unittest

from ha_guest.protocol.limits import ERROR_REPLY_BURST, ERROR_REPLY_RATE
from ha_guest.protocol.ratelimit import TokenBucket


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestTokenBucket(unittest.TestCase):
    """Burst at once, then the sustained rate; denials are counted."""

    def setUp(self) -> None:
        self.clock = FakeClock()
        self.bucket = TokenBucket(ERROR_REPLY_RATE, ERROR_REPLY_BURST, clock=self.clock)

    def test_burst_then_denied(self) -> None:
        self.assertEqual([True] * ERROR_REPLY_BURST, [self.bucket.allow() for _ in range(ERROR_REPLY_BURST)])
        self.assertFalse(self.bucket.allow())
        self.assertFalse(self.bucket.allow())
        self.assertEqual(2, self.bucket.denied)

    def test_refills_at_rate(self) -> None:
        for _ in range(ERROR_REPLY_BURST):
            self.bucket.allow()
        self.clock.now += 1.0 / ERROR_REPLY_RATE
        self.assertTrue(self.bucket.allow())
        self.assertFalse(self.bucket.allow())
        self.clock.now += 1.0
        self.assertEqual(int(ERROR_REPLY_RATE), sum(self.bucket.allow() for _ in range(100)))

    def test_never_above_burst(self) -> None:
        self.clock.now += 3600
        self.assertEqual(ERROR_REPLY_BURST, sum(self.bucket.allow() for _ in range(1000)))

    def test_sustained_rate_over_time(self) -> None:
        allowed = 0
        for _ in range(1000):  # 10 s in steps of 10 ms, asking 100 times a second
            self.clock.now += 0.01
            allowed += self.bucket.allow()
        self.assertAlmostEqual(ERROR_REPLY_BURST + 10 * ERROR_REPLY_RATE, allowed, delta=1)

    def test_clock_going_back_does_not_refill(self) -> None:
        for _ in range(ERROR_REPLY_BURST):
            self.bucket.allow()
        self.clock.now -= 100
        self.assertFalse(self.bucket.allow())

    def test_cost(self) -> None:
        bucket = TokenBucket(1.0, 5, clock=self.clock)
        self.assertTrue(bucket.allow(5))
        self.assertFalse(bucket.allow(0.5))
        self.clock.now += 0.5
        self.assertTrue(bucket.allow(0.5))

    def test_bad_parameters(self) -> None:
        for rate, burst in ((0, 1), (-1, 1), (1, 0)):
            with self.assertRaises(ValueError):
                TokenBucket(rate, burst)
