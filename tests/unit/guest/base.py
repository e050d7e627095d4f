"""Helpers for the guest agent's unit tests: bounded event loop runs and temp dirs."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import unittest
from typing import Any, Awaitable, Callable, TypeVar

T = TypeVar("T")

#: No single test may run longer than this, whatever goes wrong.
TEST_TIMEOUT_S = 20.0


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class AsyncTestCase(unittest.TestCase):
    """A TestCase that runs coroutines in a fresh loop under a hard timeout."""

    def run_async(self, coro: Awaitable[T], timeout: float = TEST_TIMEOUT_S) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(coro, timeout)

        return asyncio.run(bounded())

    def make_tempdir(self) -> str:
        # Short paths: AF_UNIX socket paths are limited to 107 bytes.
        path = tempfile.mkdtemp(prefix="hag-", dir="/tmp")
        self.addCleanup(shutil.rmtree, path, True)
        return path


async def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, step: float = 0.01) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met within %gs" % timeout)
        await asyncio.sleep(step)
