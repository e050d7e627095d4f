"""The per-channel log throttle."""

from __future__ import annotations

import logging

import testtools

from ha_guest.compute.log_gate import KeyedLogGates, LogGate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestLogGate(testtools.TestCase):

    def test_one_line_per_period_then_a_count(self) -> None:
        clock = Clock()
        logger = logging.getLogger("test.log_gate")
        gate = LogGate(logger, clock, period=10.0)
        with self.assertLogs(logger, logging.WARNING) as logs:
            gate.log(logging.WARNING, "bad frame %s", 1)
            for n in range(100):
                clock.now += 0.01
                gate.log(logging.WARNING, "bad frame %s", n)
            clock.now = 10.5
            gate.log(logging.WARNING, "bad frame %s", "late")
        self.assertEqual(["bad frame 1", "bad frame late (100 similar lines suppressed)"],
                         [record.getMessage() for record in logs.records])
        self.assertEqual(0, gate.suppressed)


class TestKeyedLogGates(testtools.TestCase):

    def test_each_key_has_its_own_period(self) -> None:
        clock = Clock()
        logger = logging.getLogger("test.log_gate.keyed")
        gates = KeyedLogGates(logger, clock, period=10.0)
        with self.assertLogs(logger, logging.WARNING) as logs:
            for _ in range(5):
                gates.log("no_group", logging.WARNING, "dropped (no_group)")
                gates.log("unavailable", logging.WARNING, "dropped (unavailable)")
            clock.now = 10.0
            gates.log("no_group", logging.WARNING, "dropped (no_group)")
        self.assertEqual(["dropped (no_group)", "dropped (unavailable)",
                          "dropped (no_group) (4 similar lines suppressed)"], [r.getMessage() for r in logs.records])
