"""The bounded wait shared by the tests, the demo and the benchmark."""

from __future__ import annotations

import itertools
import threading
import time

import testtools

from ha_guest.testing import WaitTimeout, wait_for


class TestWaitFor(testtools.TestCase):

    def test_returns_the_first_truthy_result(self) -> None:
        counter = itertools.count(1)
        self.assertEqual('third', wait_for(lambda: next(counter) == 3 and 'third', 5.0, 0.001))

    def test_timeout_is_an_assertion_error_that_says_what_was_awaited(self) -> None:
        started = time.monotonic()
        error = self.assertRaises(WaitTimeout, wait_for, lambda: None, 0.1, 0.01, 'the moon')
        self.assertIsInstance(error, AssertionError)
        self.assertEqual('timed out after 0.1s waiting for the moon', str(error))
        self.assertLess(time.monotonic() - started, 2.0)

    def test_a_message_function_describes_the_state_at_timeout(self) -> None:
        state = ['before']

        def predicate() -> bool:
            state[0] = 'after'
            return False

        error = self.assertRaises(WaitTimeout, wait_for, predicate, 0.05, 0.01, lambda: 'state %s' % state[0])
        self.assertIn('state after', str(error))

    def test_error_class_is_the_callers(self) -> None:
        class Failed(Exception):
            pass

        self.assertRaises(Failed, wait_for, lambda: False, 0.05, 0.01, error=Failed)

    def test_condition_wakes_the_wait_before_the_interval(self) -> None:
        condition = threading.Condition()
        items: list[int] = []

        def add() -> None:
            with condition:
                items.append(1)
                condition.notify_all()

        threading.Timer(0.05, add).start()
        started = time.monotonic()
        self.assertEqual([1], wait_for(lambda: list(items), 5.0, 3.0, condition=condition))
        self.assertLess(time.monotonic() - started, 2.0)  # woken by notify, not by the 3 s interval
