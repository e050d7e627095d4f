"""Heartbeat registration: init retries, init_ack, not_registered and not_enabled."""

from __future__ import annotations

import asyncio
from typing import List, Optional
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

    def test_retries_stop_after_the_limit_and_without_a_channel(self) -> None:
        async def scenario() -> None:
            reg, send = self.run_reg()
            reg.start_session()
            await asyncio.sleep(0.05 * (registration.MAX_INIT_RETRIES + 3))
            self.assertEqual(1 + registration.MAX_INIT_RETRIES, send.inits())
            send.connected = False
            reg.start_session()
            await asyncio.sleep(0.15)
            self.assertEqual(1 + registration.MAX_INIT_RETRIES, send.inits())

        with mock.patch.object(registration, "INIT_RETRY_S", 0.03):
            with self.assertLogs("ha_guest.guest.registration", "WARNING"):
                self.run_async(scenario())
