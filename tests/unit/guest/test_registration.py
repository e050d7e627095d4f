"""Heartbeat registration: init retries, init_ack, not_registered, not_enabled and the watchdog."""

from __future__ import annotations

import asyncio
import unittest
from typing import Callable, List, Optional
from unittest import mock

from ha_guest.guest import registration
from ha_guest.guest.registration import Registration
from ha_guest.protocol import heartbeat
from ha_guest.protocol.messages import Error, Message
from tests.unit.guest.base import AsyncTestCase


class Recorder:
    """Stands in for the agent's send: records messages, numbers them."""

    def __init__(self) -> None:
        self.sent: List[Message] = []
        self.connected = True

    def __call__(self, message: Message) -> Optional[int]:
        if not self.connected:
            return None
        self.sent.append(message)
        return len(self.sent)

    def inits(self) -> int:
        return sum(isinstance(m, heartbeat.Init) for m in self.sent)


NOT_ENABLED = Error("not_enabled", "heartbeat is not enabled for this instance", 2)


class TestRegistration(AsyncTestCase):

    def run_reg(self, wanted: bool = True) -> "tuple[Registration, Recorder]":
        send = Recorder()
        return Registration(send, wanted, 1000), send

    def test_states(self) -> None:
        async def scenario() -> None:
            off, _ = self.run_reg(wanted=False)
            self.assertEqual(registration.STATE_OFF, off.state)
            off.start_session()
            off.on_error(NOT_ENABLED)
            self.assertEqual(registration.STATE_OFF, off.state)
            reg, send = self.run_reg()
            self.assertEqual(registration.STATE_NOT_REGISTERED, reg.state)
            reg.start_session()
            self.assertEqual([heartbeat.Init(1000)], send.sent)
            reg.on_init_ack(heartbeat.InitAck(500, 2))
            self.assertEqual((registration.STATE_REGISTERED, 500, 2), (reg.state, reg.interval_ms, reg.miss_threshold))
            reg.on_error(NOT_ENABLED)
            self.assertEqual(registration.STATE_NOT_ENABLED, reg.state)
            self.assertFalse(reg.registered)
            reg.end_session()
            self.assertEqual(registration.STATE_NOT_REGISTERED, reg.state)
            reg.cancel()

        self.run_async(scenario())

    def test_not_enabled_cancels_the_retry_and_logs_once_per_session(self) -> None:
        async def scenario() -> None:
            reg, send = self.run_reg()
            for session in range(2):
                reg.start_session()
                reg.on_error(NOT_ENABLED)
                reg.on_error(NOT_ENABLED)
                await asyncio.sleep(0.15)
                self.assertEqual(session + 1, send.inits())
            reg.end_session()

        with mock.patch.object(registration, "INIT_RETRY_S", 0.05):
            with self.assertLogs("ha_guest.guest.registration", "INFO") as logs:
                self.run_async(scenario())
        self.assertEqual(["INFO:ha_guest.guest.registration:" + registration.NOT_ENABLED_LOG] * 2, logs.output)

    def test_error_outside_a_session_is_ignored(self) -> None:
        async def scenario() -> None:
            reg, send = self.run_reg()
            reg.on_error(NOT_ENABLED)
            reg.on_error(Error("not_registered", "", 3))
            self.assertEqual((registration.STATE_NOT_REGISTERED, []), (reg.state, send.sent))

        self.run_async(scenario())

    def test_not_registered_registers_again(self) -> None:
        async def scenario() -> None:
            reg, send = self.run_reg()
            reg.start_session()
            reg.on_error(NOT_ENABLED)
            # The host changed its mind within the session: the newer word wins.
            reg.on_error(Error("not_registered", "", 3))
            self.assertEqual((registration.STATE_NOT_REGISTERED, 2), (reg.state, send.inits()))
            reg.on_error(Error("invalid_json", "", None))
            self.assertEqual(2, send.inits())
            reg.end_session()

        self.run_async(scenario())

    def test_no_retry_without_a_channel_after_the_session(self) -> None:
        async def scenario() -> None:
            reg, send = self.run_reg()
            send.connected = False
            reg.start_session()
            reg.end_session()
            await asyncio.sleep(0.1)
            self.assertEqual(0, send.inits())

        with mock.patch.object(registration, "INIT_RETRY_S", 0.02):
            self.run_async(scenario())


class FakeTimer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Stands in for the running loop: call_later on a clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: List[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float, step: Optional[Callable[[], None]] = None, tick: float = 0.01) -> None:
        """Move the clock tick by tick, firing due timers; ``step`` runs every tick (a challenge arriving)."""
        end = self.now + seconds - 1e-9
        while self.now < end:
            self.now = round(self.now + tick, 6)
            if step is not None:
                step()
            for timer in sorted(self.timers, key=lambda t: t.when):
                if not timer.cancelled and timer.when <= self.now:
                    timer.cancelled = True
                    timer.callback()
            self.timers = [t for t in self.timers if not t.cancelled]


class TimedRecorder(Recorder):
    """A Recorder that also notes when each init went out."""

    def __init__(self, loop: FakeLoop) -> None:
        super().__init__()
        self.loop = loop
        self.init_times: List[float] = []

    def __call__(self, message: Message) -> Optional[int]:
        if isinstance(message, heartbeat.Init):
            self.init_times.append(self.loop.now)
        return super().__call__(message)

    def gaps(self) -> List[float]:
        times = self.init_times
        return [round(times[i + 1] - times[i], 6) for i in range(len(times) - 1)]


class TestWatchdog(unittest.TestCase):
    """Registered means challenged: when challenges stop, register again, with backoff, and say so once."""

    def setUp(self) -> None:
        super().setUp()
        self.loop = FakeLoop()
        patcher = mock.patch.object(registration.asyncio, "get_running_loop", return_value=self.loop)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.challenges = 0
        self.hello_requests = 0
        self.send = TimedRecorder(self.loop)
        self.reg = Registration(self.send, True, 100, lambda: self.challenges, self.request_hello)

    def request_hello(self) -> None:
        self.hello_requests += 1

    def challenged(self) -> None:
        if round(self.loop.now * 100) % 10 == 0:  # one challenge every 100 ms
            self.challenges += 1

    def registered(self, interval_ms: int = 100) -> None:
        self.reg.start_session()
        self.reg.on_init_ack(heartbeat.InitAck(interval_ms, 1))

    def test_init_retried_with_backoff_for_the_whole_session(self) -> None:
        with self.assertLogs("ha_guest.guest.registration", "DEBUG") as logs:
            self.reg.start_session()
            self.loop.advance(400.0)
        self.assertEqual([2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0, 60.0], self.send.gaps()[:10])
        warnings = [line for line in logs.output if line.startswith("WARNING")]
        self.assertEqual(1, len(warnings), warnings)
        self.reg.end_session()
        sent = self.send.inits()
        self.loop.advance(400.0)
        self.assertEqual(sent, self.send.inits())

    def test_challenges_arriving_keep_it_quiet(self) -> None:
        self.registered()
        self.loop.advance(30.0, self.challenged)
        self.assertEqual(1, self.send.inits())
        self.assertFalse(self.reg.silent)

    def test_silence_reregisters_logs_once_and_backs_off(self) -> None:
        self.registered()
        with self.assertLogs("ha_guest.guest.registration", "DEBUG") as logs:
            self.loop.advance(5.0, self.challenged)
            stopped_at = self.loop.now
            self.loop.advance(300.0)  # the host stopped asking
        first = self.send.init_times[1] - stopped_at
        self.assertGreater(first, registration.SILENCE_INTERVALS * 0.1)
        self.assertLessEqual(first, 2 * (registration.SILENCE_INTERVALS * 0.1 + registration.SILENCE_SLACK_S))
        gaps = self.send.gaps()[1:]
        self.assertEqual(sorted(gaps), gaps)  # growing ...
        self.assertEqual(registration.MAX_RETRY_S, gaps[-1])  # ... up to the cap, and never giving up
        self.assertTrue(self.reg.silent and self.reg.registered)
        self.assertEqual(self.send.inits() - 1, self.reg.reregistrations)
        warnings = [line for line in logs.output if line.startswith("WARNING")]
        self.assertEqual(1, len(warnings), warnings)
        self.assertIn("no challenge from the host", warnings[0])
        # Challenges come back: one INFO line, no more inits.
        with self.assertLogs("ha_guest.guest.registration", "INFO") as logs:
            self.loop.advance(120.0, self.challenged)
        self.assertEqual(["INFO:ha_guest.guest.registration:challenges arrive again"], logs.output)
        sent = self.send.inits()
        self.loop.advance(30.0, self.challenged)
        self.assertEqual(sent, self.send.inits())
        self.assertFalse(self.reg.silent)

    def test_second_silence_soon_after_is_not_logged_again(self) -> None:
        self.registered()
        with self.assertLogs("ha_guest.guest.registration", "DEBUG") as logs:
            for _ in range(3):
                self.loop.advance(5.0)
                self.loop.advance(5.0, self.challenged)
        self.assertEqual(1, len([line for line in logs.output if line.startswith("WARNING")]))
        self.assertGreaterEqual(self.reg.reregistrations, 3)  # each silence re-registered

    def test_init_ack_of_a_reinit_keeps_the_backoff(self) -> None:
        self.registered()

        def ack_every_init() -> None:
            if len(self.send.sent) and isinstance(self.send.sent[-1], heartbeat.Init):
                self.send.sent.append(heartbeat.InitAck(100, 1))  # marks it answered
                self.reg.on_init_ack(heartbeat.InitAck(100, 1))

        self.loop.advance(200.0, ack_every_init)  # the host acknowledges but never challenges
        gaps = self.send.gaps()[1:]
        self.assertEqual(registration.MAX_RETRY_S, gaps[-1])
        self.assertEqual(sorted(gaps), gaps)

    def test_exit_ack_and_not_enabled_stop_the_watchdog(self) -> None:
        self.registered()
        self.reg.on_exit_ack()
        self.loop.advance(100.0)
        self.assertEqual(1, self.send.inits())
        self.registered()
        self.reg.on_error(NOT_ENABLED)
        self.loop.advance(100.0)
        self.assertEqual(2, self.send.inits())

    def test_long_interval_watches_three_intervals(self) -> None:
        self.registered(60000)
        self.loop.advance(180.0, tick=1.0)
        self.assertEqual(1, self.send.inits())
        self.loop.advance(2.0, tick=1.0)
        self.assertEqual(2, self.send.inits())

    def test_init_refused_before_hello_ack_asks_for_a_hello(self) -> None:
        self.reg.start_session()
        init_seq = len(self.send.sent)
        self.reg.on_error(Error("unexpected_message", "challenge travels host to guest", init_seq + 5))
        self.assertEqual(0, self.hello_requests)  # about another frame: not ours to act on
        self.reg.on_error(Error("unexpected_message", "init before hello_ack", init_seq))
        self.assertEqual((1, False), (self.hello_requests, self.reg.registered))
        self.loop.advance(10.0)  # no hello came: init again, still within the session
        self.assertGreaterEqual(self.send.inits(), 2)
        self.reg.end_session()
