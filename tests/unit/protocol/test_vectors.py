"""Run every case of tests/vectors through ChannelCodec."""

from __future__ import annotations

import dataclasses
import unittest
from typing import List

from ha_guest.protocol import errors, registered_types
from tests import vectors


class TestVectors(unittest.TestCase):
    """The shared vectors pass, cover every type and code, and the runner can fail."""

    cases: List[vectors.Case]

    @classmethod
    def setUpClass(cls) -> None:
        cls.cases = vectors.load_cases()

    def test_every_case(self) -> None:
        for case in self.cases:
            with self.subTest(case.name):
                self.assertEqual([], vectors.run_case(case))

    def test_coverage(self) -> None:
        messages = {(e["app"], e["type"]) for c in self.cases for e in c.expect if e["kind"] == "message"}
        self.assertEqual(set(registered_types()), messages)
        codes = {e["code"] for c in self.cases for e in c.expect if e["kind"] == "error"}
        # not_registered, not_enabled and rate_limited are application decisions, not codec results.
        app_codes = {errors.NOT_REGISTERED, errors.NOT_ENABLED, errors.RATE_LIMITED}
        self.assertEqual(set(errors.ERROR_CODES) - app_codes, codes)
        self.assertTrue(any(e["kind"] == "stale" for c in self.cases for e in c.expect))
        self.assertEqual({"host", "guest"}, {c.role for c in self.cases})

    def test_runner_reports_mismatches(self) -> None:
        case = next(c for c in self.cases if c.name == "init")
        wrong = dataclasses.replace(case, expect=({"kind": "error", "code": "invalid_json"},))
        self.assertNotEqual([], vectors.run_case(wrong))
        stale = dataclasses.replace(case, expect=({"kind": "stale"},))
        self.assertNotEqual([], vectors.run_case(stale))
        moved = dataclasses.replace(case, session_after="elsewhere")
        self.assertNotEqual([], vectors.run_case(moved))
