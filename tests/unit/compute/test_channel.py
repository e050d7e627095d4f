"""The host end of a channel against a scripted guest on a real UNIX socket."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import unittest
from typing import Any, AsyncIterator, Optional, Tuple

from ha_guest.compute import fastpath
from ha_guest.compute.channel import ChannelSettings
from ha_guest.compute.discovery.base import Features
from ha_guest.compute.heartbeat_monitor import EventKind, GuestState, HeartbeatPolicy
from ha_guest.protocol import errors, heartbeat, sgm
from ha_guest.protocol.envelope import decode, encode_message
from ha_guest.protocol.messages import Error, Hello, HelloAck, HelloRequest
from tests.unit.compute.base import UUID, AsyncTestCase, ChannelHarness, FakeGuest, wait_until


class ChannelTestCase(AsyncTestCase):

    @contextlib.asynccontextmanager
    async def connected(self, settings: Optional[ChannelSettings] = None, policy: Optional[HeartbeatPolicy] = None,
                        **guest_kwargs: Any) -> AsyncIterator[Tuple[FakeGuest, ChannelHarness]]:
        """A started FakeGuest and a started channel to it; both closed on the way out, also on failure."""
        guest = await FakeGuest(self.socket_path(), **guest_kwargs).start()
        try:
            h = ChannelHarness(guest.path, settings, policy)
            try:
                h.channel.start()
                yield guest, h
            finally:
                await h.close()
        finally:
            await guest.stop()


class TestSession(ChannelTestCase):

    def test_hello_register_challenge_response(self) -> None:
        async def scenario() -> None:
            async with self.connected(ChannelSettings(miss_threshold=2),
                                      HeartbeatPolicy(miss_threshold=2, min_interval_ms=150),
                                      interval_ms=100) as (guest, h):
                await wait_until(lambda: h.monitor.stats.responses >= 3, what="three answered challenges")
                hellos = guest.of_type(Hello)
                self.assertEqual(1, len(hellos))
                self.assertEqual(guest.sessions[0], h.channel.codec.session)
                ack = guest.of_type(heartbeat.InitAck)[0]
                self.assertEqual((150, 2), (ack.interval_ms, ack.miss_threshold))  # clamped to the host's minimum
                self.assertEqual(GuestState.HEALTHY, h.monitor.state)
                self.assertTrue(h.channel.hello_acked)
                self.assertEqual("fake-guest/1", h.channel.agent)
                self.assertEqual([], guest.errors)
                self.assertEqual([], h.kinds(EventKind.FAULT))
        self.run_async(scenario())

    def test_challenge_frame_is_what_the_encoder_writes(self) -> None:
        async def scenario() -> None:
            async with self.connected() as (guest, h):
                await wait_until(lambda: guest.of_type(heartbeat.Challenge), what="a challenge")
                challenge = [f for f in guest.frames if isinstance(f.message, heartbeat.Challenge)][0]
                expected = encode_message(challenge.message, challenge.seq, h.channel.codec.session, 1)
                fast = h.channel._challenge_frame % (challenge.seq, challenge.message.nonce.encode())
                self.assertEqual(expected, fast)
                self.assertEqual(challenge.message, decode(fast[:-1]).message)
        self.run_async(scenario())

    def test_hello_resent_until_acknowledged(self) -> None:
        async def scenario() -> None:
            async with self.connected(ChannelSettings(hello_retry_s=0.1), auto_hello=False) as (guest, h):
                await wait_until(lambda: len(guest.of_type(Hello)) >= 3, what="hello re-sent")
                guest.send(HelloAck(1, "late"))
                await wait_until(lambda: h.channel.hello_acked, what="hello_ack taken")
                count = len(guest.of_type(Hello))
                await asyncio.sleep(0.3)
                self.assertEqual(count, len(guest.of_type(Hello)))
        self.run_async(scenario())

    def test_hello_request_answered(self) -> None:
        async def scenario() -> None:
            async with self.connected() as (guest, h):
                await wait_until(lambda: h.monitor.state == GuestState.HEALTHY, what="registered")
                guest.send(HelloRequest())
                await wait_until(lambda: len(guest.of_type(Hello)) == 2, what="a second hello")
                # Same session: a hello_request does not start a new one; the registration goes on.
                self.assertEqual([h.channel.codec.session] * 2, guest.sessions)
                await wait_until(lambda: len(guest.of_type(heartbeat.InitAck)) == 2, what="registered again")
                self.assertEqual([], h.kinds(EventKind.FAULT))
        self.run_async(scenario())

    def test_unsupported_hello_ack_version(self) -> None:
        async def scenario() -> None:
            async with self.connected(auto_hello=False) as (guest, h):
                await wait_until(lambda: guest.of_type(Hello), what="hello")
                guest.codec.session = h.channel.codec.session
                seq = guest.send(HelloAck(7, "future"))
                await wait_until(lambda: guest.of_type(Error), what="error reply")
                error = guest.of_type(Error)[0]
                self.assertEqual((errors.UNSUPPORTED_VERSION, seq), (error.code, error.ref_seq))
                self.assertFalse(h.channel.hello_acked)
        self.run_async(scenario())


class TestHeartbeat(ChannelTestCase):

    def test_hung_guest_faults_and_recovers(self) -> None:
        async def scenario() -> None:
            async with self.connected() as (guest, h):
                await wait_until(lambda: h.monitor.stats.responses >= 2, what="answers")
                guest.answer = False
                fault = (await wait_until(lambda: h.kinds(EventKind.FAULT), what="a fault"))[0]
                self.assertEqual("missed", fault.fault_kind)
                await asyncio.sleep(0.3)
                self.assertEqual(1, len(h.kinds(EventKind.FAULT)))
                guest.answer = True
                recovered = (await wait_until(lambda: h.kinds(EventKind.RECOVERED), what="recovery"))[0]
                self.assertEqual(fault.incident_id, recovered.incident_id)
        self.run_async(scenario())

    def test_unhealthy_answer_takes_the_full_path(self) -> None:
        async def scenario() -> None:
            async with self.connected(health=heartbeat.UNHEALTHY, reason="db down") as (guest, h):
                fault = (await wait_until(lambda: h.kinds(EventKind.FAULT), what="a fault"))[0]
                self.assertEqual(("unhealthy", "db down"), (fault.fault_kind, fault.reason))
        self.run_async(scenario())

    def test_response_split_across_reads_and_crlf(self) -> None:
        async def scenario() -> None:
            async with self.connected(answer=False) as (guest, h):
                await wait_until(lambda: guest.of_type(heartbeat.Challenge), what="a challenge")
                nonce = guest.of_type(heartbeat.Challenge)[-1].nonce
                frame = encode_message(heartbeat.Response(nonce, "healthy", ""), 99, guest.codec.session)
                guest.send_raw(frame[:20])
                await asyncio.sleep(0.01)
                guest.send_raw(frame[20:-1] + b"\r\n")
                await wait_until(lambda: h.monitor.stats.responses == 1, what="the split answer")
        self.run_async(scenario())

    def test_stale_session_response_is_dropped(self) -> None:
        async def scenario() -> None:
            async with self.connected(answer=False) as (guest, h):
                await wait_until(lambda: guest.of_type(heartbeat.Challenge), what="a challenge")
                nonce = guest.of_type(heartbeat.Challenge)[-1].nonce
                guest.send_raw(encode_message(heartbeat.Response(nonce, "healthy", ""), 5, "0000000000000000"))
                await asyncio.sleep(0.05)
                self.assertEqual(0, h.monitor.stats.responses)
                self.assertEqual(1, h.channel.codec.stale_frames)
                self.assertEqual([], guest.of_type(Error))  # stale frames are never answered
        self.run_async(scenario())

    def test_response_without_registration_is_not_registered(self) -> None:
        async def scenario() -> None:
            async with self.connected(auto_hello=False) as (guest, h):
                await wait_until(lambda: guest.of_type(Hello), what="hello")
                guest.codec.session = h.channel.codec.session
                guest.send(HelloAck(1, "x"))
                seq = guest.send(heartbeat.Response("abcdef0123456789", "healthy", ""))
                await wait_until(lambda: guest.of_type(Error), what="error reply")
                self.assertEqual((errors.NOT_REGISTERED, seq), (guest.of_type(Error)[0].code,
                                                                guest.of_type(Error)[0].ref_seq))
        self.run_async(scenario())

    def test_exit_acknowledged_and_reported(self) -> None:
        async def scenario() -> None:
            async with self.connected() as (guest, h):
                await wait_until(lambda: h.monitor.stats.responses >= 1, what="answers")
                guest.send(heartbeat.Exit("agent stopping"))
                await wait_until(lambda: guest.of_type(heartbeat.ExitAck), what="exit_ack")
                self.assertEqual(GuestState.EXITED, h.monitor.state)
                self.assertEqual(["agent stopping"], [e.reason for e in h.kinds(EventKind.EXITED)])
                guest.send(heartbeat.Exit("again"))  # not registered: acknowledged, nothing reported
                await wait_until(lambda: len(guest.of_type(heartbeat.ExitAck)) == 2, what="second exit_ack")
                self.assertEqual(1, len(h.kinds(EventKind.EXITED)))
                self.assertEqual([], h.kinds(EventKind.FAULT))
        self.run_async(scenario())

    def test_sgm_requests_are_nacked(self) -> None:
        async def scenario() -> None:
            async with self.connected() as (guest, h):
                await wait_until(lambda: h.channel.hello_acked, what="session")
                first = guest.send(sgm.Broadcast(b"hi"))
                second = guest.send(sgm.StatusRequest())
                await wait_until(lambda: len(guest.of_type(sgm.Nack)) == 2, what="two nacks")
                nacks = guest.of_type(sgm.Nack)
                self.assertEqual([(first, sgm.NACK_NOT_ENABLED), (second, sgm.NACK_NOT_ENABLED)],
                                 [(n.ref_seq, n.reason) for n in nacks])
        self.run_async(scenario())

    def test_heartbeat_off_is_never_watched(self) -> None:
        async def scenario() -> None:
            async with self.connected(interval_ms=100) as (guest, h):
                h.channel.features = Features(heartbeat=False, server_group_messaging=True)  # before any I/O
                await wait_until(lambda: guest.of_type(Error), what="an error for the init")
                error = guest.of_type(Error)[0]
                self.assertEqual(errors.NOT_ENABLED, error.code)
                seq = guest.send(heartbeat.Response("abcdef0123456789", "healthy", ""))
                await wait_until(lambda: len(guest.of_type(Error)) == 2, what="an error for the response")
                self.assertEqual((errors.NOT_ENABLED, seq), (guest.of_type(Error)[1].code,
                                                             guest.of_type(Error)[1].ref_seq))
                await asyncio.sleep(0.35)  # three intervals: nothing is challenged, nothing is missed
                self.assertEqual([], guest.of_type(heartbeat.Challenge))
                self.assertEqual([], guest.of_type(heartbeat.InitAck))
                self.assertEqual([], h.kinds(EventKind.FAULT))
                self.assertEqual(GuestState.UNREGISTERED, h.monitor.state)
        self.run_async(scenario())

    def test_sgm_requests_go_to_the_relay_hook(self) -> None:
        async def scenario() -> None:
            seen: list = []
            async with self.connected() as (guest, h):
                h.channel.sgm = lambda channel, env, message: seen.append((channel, env.seq, message))
                await wait_until(lambda: h.channel.hello_acked, what="session")
                seq = guest.send(sgm.Broadcast(b"hi"))
                await wait_until(lambda: seen, what="the hook")
                self.assertEqual([(h.channel, seq, sgm.Broadcast(b"hi"))], seen)
                self.assertEqual([], guest.of_type(sgm.Nack))
        self.run_async(scenario())


class TestRegistrationRules(ChannelTestCase):
    """protocol.rst, Registration: a guest is monitored or told that it is not; only exit ends it."""

    async def acked(self, guest: FakeGuest, h: ChannelHarness) -> None:
        await wait_until(lambda: guest.of_type(Hello), what="hello")
        guest.codec.session = h.channel.codec.session
        guest.send(HelloAck(1, "scripted"))
        await wait_until(lambda: h.channel.hello_acked, what="hello_ack taken")

    def test_init_before_hello_ack_is_refused_and_told(self) -> None:
        async def scenario() -> None:
            async with self.connected(auto_hello=False, answer=False) as (guest, h):
                await wait_until(lambda: guest.of_type(Hello), what="hello")
                guest.codec.session = h.channel.codec.session
                seq = guest.send(heartbeat.Init(100))
                await wait_until(lambda: guest.of_type(Error), what="an error for the init")
                error = guest.of_type(Error)[0]
                self.assertEqual((errors.UNEXPECTED_MESSAGE, seq), (error.code, error.ref_seq))
                self.assertEqual([], guest.of_type(heartbeat.InitAck))
                self.assertFalse(h.monitor.registered)
                # Done in order, the same guest is registered and watched.
                guest.send(HelloAck(1, "scripted"))
                guest.send(heartbeat.Init(100))
                await wait_until(lambda: guest.of_type(heartbeat.InitAck), what="init_ack")
                fault = (await wait_until(lambda: h.kinds(EventKind.FAULT), what="a fault"))[0]
                self.assertEqual("missed", fault.fault_kind)
        self.run_async(scenario())

    def test_hello_ack_replay_keeps_the_guest_watched(self) -> None:
        async def scenario() -> None:
            async with self.connected(auto_hello=False) as (guest, h):
                await self.acked(guest, h)
                guest.send(heartbeat.Init(100))
                await wait_until(lambda: h.monitor.stats.responses >= 2, what="answers")
                guest.send(HelloAck(1, "scripted"))  # the same version again ...
                seq = guest.send(HelloAck(9, "scripted"))  # ... and one the host does not speak
                await wait_until(lambda: guest.of_type(Error), what="unsupported_version")
                self.assertEqual((errors.UNSUPPORTED_VERSION, seq), (guest.of_type(Error)[0].code,
                                                                     guest.of_type(Error)[0].ref_seq))
                self.assertTrue(h.monitor.registered)
                self.assertEqual(GuestState.HEALTHY, h.monitor.state)
                guest.answer = False  # then it hangs: reported
                fault = (await wait_until(lambda: h.kinds(EventKind.FAULT), what="a fault"))[0]
                self.assertEqual("missed", fault.fault_kind)
                self.assertEqual(1, len(h.kinds(EventKind.REGISTERED)))
        self.run_async(scenario())

    def test_hello_request_and_new_hello_ack_keep_the_registration(self) -> None:
        async def scenario() -> None:
            async with self.connected(answer=False) as (guest, h):
                # A guest agent restart within the session: hello_request, hello, hello_ack and init.
                await wait_until(lambda: guest.of_type(heartbeat.InitAck), what="registered")
                guest.send(HelloRequest())
                await wait_until(lambda: len(guest.of_type(heartbeat.InitAck)) == 2, what="registered again")
                self.assertTrue(h.monitor.registered)
                await wait_until(lambda: h.kinds(EventKind.FAULT), what="the silent guest reported")
        self.run_async(scenario())

    def test_reinit_every_interval_cannot_hide_a_hang(self) -> None:
        async def scenario() -> None:
            async with self.connected(answer=False, interval_ms=100) as (guest, h):
                await wait_until(lambda: guest.of_type(heartbeat.InitAck), what="registered")
                for _ in range(8):
                    guest.send(heartbeat.Init(100))
                    await asyncio.sleep(0.05)
                    if h.kinds(EventKind.FAULT):
                        break
                fault = (await wait_until(lambda: h.kinds(EventKind.FAULT), what="a fault"))[0]
                self.assertEqual("missed", fault.fault_kind)
                self.assertGreaterEqual(len(guest.of_type(heartbeat.InitAck)), 2)  # each init answered
                self.assertEqual(1, len(h.kinds(EventKind.REGISTERED)))  # and no state file write for it
        self.run_async(scenario())

    def test_init_before_hello_ack_after_reconnection_keeps_watching(self) -> None:
        async def scenario() -> None:
            settings = ChannelSettings(channel_loss_grace_s=0.1, reconnect_min_s=0.01, hello_retry_s=5.0)
            async with self.connected(settings, interval_ms=100) as (guest, h):
                await wait_until(lambda: h.monitor.stats.responses >= 1, what="answers")
                guest.auto_hello = False
                guest.answer = False
                guest.drop()
                await wait_until(lambda: guest.connections == 2 and guest.of_type(Hello)[1:], what="new session")
                guest.codec.session = h.channel.codec.session
                seq = guest.send(heartbeat.Init(100))
                await wait_until(lambda: guest.of_type(Error), what="an error for the init")
                self.assertEqual((errors.UNEXPECTED_MESSAGE, seq), (guest.of_type(Error)[0].code,
                                                                    guest.of_type(Error)[0].ref_seq))
                self.assertTrue(h.monitor.registered)
                await wait_until(lambda: h.kinds(EventKind.FAULT), what="the hung guest reported")
        self.run_async(scenario())


class TestBadGuests(ChannelTestCase):

    def test_garbage_answered_with_rate_limited_errors(self) -> None:
        async def scenario() -> None:
            async with self.connected(ChannelSettings(guest_frame_rate=1000, guest_frame_burst=1000)) as (guest, h):
                await wait_until(lambda: h.monitor.stats.responses >= 1, what="answers")
                guest.send_raw(b"not json\n" * 50 + b"\xff\xfe\n" + b"x" * 9000 + b"\n" + b"[1]\n")
                await wait_until(lambda: h.channel.counters["protocol_errors"] >= 53, what="errors counted")
                await asyncio.sleep(0.05)
                replies = guest.of_type(Error)
                self.assertLessEqual(len(replies), 11)  # the error-reply burst, plus refill
                self.assertGreaterEqual(len(replies), 10)
                self.assertEqual(errors.INVALID_JSON, replies[0].code)
                # The guest hurt nobody: the channel still works.
                answered = h.monitor.stats.responses
                await wait_until(lambda: h.monitor.stats.responses > answered + 1, what="more answers")
                self.assertEqual([], h.kinds(EventKind.FAULT))
        self.run_async(scenario())

    def test_frame_flood_is_rate_limited(self) -> None:
        async def scenario() -> None:
            async with self.connected(ChannelSettings(guest_frame_rate=50, guest_frame_burst=100)) as (guest, h):
                await wait_until(lambda: h.channel.hello_acked, what="session")
                for _ in range(300):
                    guest.send(Error("invalid_json", "flood", None))
                await wait_until(lambda: h.channel.counters["rate_limited"] > 0, what="rate limiting")
                codes = [e.code for e in guest.of_type(Error)]
                self.assertIn(errors.RATE_LIMITED, codes)
                self.assertLessEqual(len(codes), 12)
                self.assertTrue(h.channel.connected)
        self.run_async(scenario())

    def test_guest_that_stops_reading_is_dropped_and_reconnected(self) -> None:
        async def scenario() -> None:
            async with self.connected(ChannelSettings(write_buffer_limit=4096, reconnect_min_s=0.01)) as (guest, h):
                await wait_until(lambda: h.channel.hello_acked, what="session")
                assert guest.conn is not None and guest.conn.transport is not None
                guest.conn.transport.pause_reading()
                for _ in range(20000):
                    h.channel.send_challenge("0123456789abcdef")
                    if h.channel.counters["overflows"]:
                        break
                self.assertEqual(1, h.channel.counters["overflows"])
                await wait_until(lambda: guest.connections == 2 and h.channel.hello_acked, what="reconnected")
                self.assertEqual(2, len(set(guest.sessions)))
        self.run_async(scenario())


class TestConnection(ChannelTestCase):

    def test_reconnects_with_a_new_session_and_keeps_counting(self) -> None:
        async def scenario() -> None:
            async with self.connected(ChannelSettings(reconnect_min_s=0.02)) as (guest, h):
                await wait_until(lambda: h.monitor.stats.responses >= 1, what="answers")
                guest.drop()
                await wait_until(lambda: guest.connections == 2 and h.channel.hello_acked, what="reconnected")
                self.assertNotEqual(guest.sessions[0], guest.sessions[1])
                answered = h.monitor.stats.responses
                await wait_until(lambda: h.monitor.stats.responses > answered, what="answers again")
        self.run_async(scenario())

    def test_channel_down_while_running_is_a_fault(self) -> None:
        async def scenario() -> None:
            async with self.connected(ChannelSettings(reconnect_min_s=0.02)) as (guest, h):
                await wait_until(lambda: h.monitor.stats.responses >= 1, what="answers")
                await guest.stop()  # QEMU vanished, the domain still "runs"
                await wait_until(lambda: h.kinds(EventKind.FAULT), what="a fault")
                self.assertGreater(h.channel.counters["challenges_unsent"], 0)
        self.run_async(scenario())

    def test_connects_once_the_socket_appears(self) -> None:
        async def scenario() -> None:
            path = self.socket_path()
            h = ChannelHarness(path, ChannelSettings(reconnect_min_s=0.01, reconnect_max_s=0.05))
            h.channel.start()
            await wait_until(lambda: h.channel.counters["connect_failures"] >= 3, what="failed attempts")
            guest = await FakeGuest(path).start()
            await wait_until(lambda: h.monitor.stats.responses >= 1, what="answers")
            await h.close()
            await guest.stop()
        self.run_async(scenario())

    def test_close_stops_reconnecting(self) -> None:
        async def scenario() -> None:
            async with self.connected(ChannelSettings(reconnect_min_s=0.01)) as (guest, h):
                await wait_until(lambda: h.channel.hello_acked, what="session")
                await h.close()
                await asyncio.sleep(0.1)
                self.assertEqual(1, guest.connections)
                self.assertFalse(h.channel.connected)
        self.run_async(scenario())

    def test_set_path_moves_to_new_socket(self) -> None:
        async def scenario() -> None:
            old = await FakeGuest(self.socket_path("a.sock")).start()
            new = await FakeGuest(self.socket_path("b.sock")).start()
            h = ChannelHarness(old.path, ChannelSettings(reconnect_min_s=0.01))
            h.channel.start()
            await wait_until(lambda: h.channel.hello_acked, what="session")
            h.channel.set_path(new.path)
            await wait_until(lambda: new.connections == 1 and h.channel.hello_acked, what="moved")
            await h.close()
            await old.stop()
            await new.stop()
        self.run_async(scenario())


class TestFastPath(AsyncTestCase):
    """The healthy-response shortcut takes only frames the full decoder reads the same way."""

    def test_matches_what_the_reference_encoder_writes(self) -> None:
        from ha_guest.compute.fastpath import healthy_response as _HEALTHY_RESPONSE
        for nonce, seq in (("8d1f0b6c2a9e4735", 0), ("a", 1), ("A.b_c:d@e-f", 999999999999999),
                           ("x" * 64, 123456789012345)):
            frame = encode_message(heartbeat.Response(nonce, "healthy", ""), seq, "3f9a0c5e7b21d864")[:-1]
            match = _HEALTHY_RESPONSE(frame)
            self.assertIsNotNone(match, frame)
            assert match is not None
            self.assertEqual(decode(frame).message, heartbeat.Response(match.group(4).decode(), "healthy", ""))
            self.assertEqual(decode(frame).seq, int(match.group(2)))

    def test_leaves_everything_else_to_the_codec(self) -> None:
        from ha_guest.compute.fastpath import healthy_response as _HEALTHY_RESPONSE
        session = "3f9a0c5e7b21d864"
        others = [
            encode_message(heartbeat.Response("n", "unhealthy", ""), 1, session),
            encode_message(heartbeat.Response("n", "healthy", "ok"), 1, session),
            encode_message(heartbeat.Response("n", "healthy", ""), 1, None),
            encode_message(heartbeat.Response("n", "healthy", ""), 10 ** 16, session),
            encode_message(heartbeat.Challenge("n"), 1, session),
        ]
        others = [frame[:-1] for frame in others]
        others += [
            b'{"v":1,"app":"heartbeat","type":"response","seq":01,"session":"3f9a0c5e7b21d864",'
            b'"data":{"nonce":"n","health":"healthy","reason":""}}',
            b'{"v":1,"app":"heartbeat","type":"response","seq":1,"session":"3f9a0c5e7b21d864",'
            b'"data":{"nonce":"n\\u0041","health":"healthy","reason":""}}',
            b'{"v":1,"app":"heartbeat","type":"response","seq":1,"session":"3f9a0c5e7b21d864",'
            b'"data":{"nonce":"' + b"n" * 65 + b'","health":"healthy","reason":""}}',
        ]
        for frame in others:
            self.assertIsNone(_HEALTHY_RESPONSE(frame), frame)


class TestPreEncodedDelivery(unittest.TestCase):

    def test_frame_is_what_the_encoder_writes(self) -> None:
        payload = bytes(range(256)) * 11 + b"end"
        data = fastpath.broadcast_deliver_data(UUID, base64.b64encode(payload).decode())
        frame = fastpath.broadcast_deliver_frame(1, 4242, "3f9a0c5e7b21d864", data)
        self.assertEqual(encode_message(sgm.BroadcastDeliver(UUID, payload), 4242, "3f9a0c5e7b21d864", 1), frame)
        self.assertEqual(sgm.BroadcastDeliver(UUID, payload), decode(frame.rstrip(b"\n")).message)

