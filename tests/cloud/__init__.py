"""Scenarios on a real OpenStack (tox -e cloud): one cloud for every module, stopped at the suite's end."""

from __future__ import annotations

import os
import unittest
from typing import Any


class _CloudSuite(unittest.TestSuite):
    """The package's tests; the shared cloud (tests/cloud/base.py) stops once they all ran."""

    def run(self, result: Any, debug: bool = False) -> Any:
        try:
            return super().run(result, debug)
        finally:
            # Imported here: discovery (stestr --list) must not need the cloud's modules to be usable.
            from tests.cloud import base
            base.SHARED.stop()


def load_tests(loader: unittest.TestLoader, tests: unittest.TestSuite, pattern: str) -> unittest.TestSuite:
    """Discover the modules of this package into one suite that stops the cloud at its end."""
    suite = _CloudSuite()
    suite.addTests(tests)
    suite.addTests(loader.discover(start_dir=os.path.dirname(__file__), pattern=pattern or 'test*.py'))
    return suite
