"""A short pass of the fuzz run (tests/fuzz): Hypothesis inputs, then mutated ones, through both targets."""

from __future__ import annotations

import random
import unittest
from typing import List
from unittest import mock

from hypothesis import HealthCheck, given, settings

from ha_guest.protocol.codec import ChannelCodec
from tests.fuzz import inputs, mutate, targets

SHORT = settings(max_examples=150, database=None, deadline=None, suppress_health_check=list(HealthCheck))
MUTATED = 1500


class FuzzTest(unittest.TestCase):
    """No input breaks the host channel or the guest agent (tox -e fuzz runs the long version)."""

    harness: targets.Harness

    @classmethod
    def setUpClass(cls) -> None:
        cls.harness = targets.Harness()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.harness.close()

    @SHORT
    @given(inputs.host_inputs)
    def test_host_channel(self, inp: inputs.FuzzInput) -> None:
        self.harness.host.run(inp)

    @SHORT
    @given(inputs.guest_inputs)
    def test_guest_agent(self, inp: inputs.FuzzInput) -> None:
        self.harness.guest.run(inp)

    def check_mutated(self, strategy: object, run: object) -> None:
        corpus: List[bytes] = []

        @settings(SHORT, max_examples=60)
        @given(strategy)
        def collect(inp: inputs.FuzzInput) -> None:
            corpus.extend(inp.pieces)

        collect()
        for index in range(MUTATED):
            inp = mutate.make_input(random.Random("unit:%d" % index), corpus)
            with self.subTest(index=index):
                run(inp)  # type: ignore[operator]

    def test_host_channel_mutated(self) -> None:
        self.check_mutated(inputs.host_inputs, self.harness.host.run)

    def test_guest_agent_mutated(self) -> None:
        self.check_mutated(inputs.guest_inputs, self.harness.guest.run)

    def test_a_broken_target_is_caught(self) -> None:
        # The harness must see what the channel swallows: its catch-all logs the exception.
        inp = inputs.FuzzInput(True, True, False, 100, [b"{}\n"], inputs.Delivery((4096,), (True,), (0.0,)))
        with mock.patch.object(ChannelCodec, "feed", side_effect=ZeroDivisionError):
            with self.assertRaises(targets.FuzzFailure):
                self.harness.host.run(inp)
