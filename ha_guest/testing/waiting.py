"""The one bounded wait of the tests, the demo and the benchmark: poll a predicate until it holds."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Optional, TypeVar, Union

_T = TypeVar('_T')
#: What a wait is for, or a function that says it when the wait runs out (to describe the state then).
Message = Union[str, Callable[[], str]]


class WaitTimeout(AssertionError):
    """A bounded wait ran out; an AssertionError, so a test that waits in vain fails rather than errors."""


def wait_for(predicate: Callable[[], Optional[_T]], timeout: float, interval: float = 0.05,
             message: Message = 'a condition', *, condition: threading.Condition | None = None,
             error: type[Exception] = WaitTimeout) -> _T:
    """Return ``predicate()``'s first truthy result; raise ``error`` once ``timeout`` seconds have passed.

    Without ``condition`` the predicate is called every ``interval`` seconds. With it, the predicate runs
    with the condition's lock held and is called again whenever the condition is notified, and at least
    every ``interval`` seconds so that outside state (a process, a file) is seen too.
    """
    deadline = time.monotonic() + timeout
    with condition if condition is not None else contextlib.nullcontext():
        while True:
            result = predicate()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                # Said under the lock, so a message function sees the state the predicate saw last.
                what = message() if callable(message) else message
                raise error('timed out after %.1fs waiting for %s' % (timeout, what))
            if condition is not None:
                condition.wait(min(left, interval))
            else:
                time.sleep(min(left, interval))
