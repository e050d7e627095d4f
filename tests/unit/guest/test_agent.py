"""The agent's session handling against an in-process scripted host."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Generic, List, Optional, Type, TypeVar
from unittest import mock

from ha_guest.guest import agent, config, registration
from ha_guest.protocol import heartbeat, sgm
from ha_guest.protocol.codec import HOST, ChannelCodec
from ha_guest.protocol.envelope import Envelope, encode_message
from ha_guest.protocol.errors import ProtocolError
from ha_guest.protocol.messages import Error, Hello, HelloAck, HelloRequest, Message
from tests.unit.guest.base import AsyncTestCase, wait_until

MEMBER = "6f1c2c8e-4d1a-4c55-9a55-1f0e2b9a7c11"
M = TypeVar("M", bound=Message)


class Got(Generic[M]):
    """A received frame with its message typed as expected."""

    def __init__(self, message: M, seq: int) -> None:
        self.message = message
        self.seq = seq


class ScriptedHost:
    """The host end of one channel: accepts the agent and speaks the protocol."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.codec = ChannelCodec(HOST)
        self.inbox: "asyncio.Queue[Any]" = asyncio.Queue()
        self.connected = asyncio.Event()
        self.writer: Optional[asyncio.StreamWriter] = None
        self.server: Optional[asyncio.AbstractServer] = None
        self.connections = 0

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._accept, self.path)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writer = writer
        self.codec.reset()
        self.connected.set()
        while True:
            data = await reader.read(65536)
            if not data:
                break
            for item in self.codec.feed(data):
                self.inbox.put_nowait(item)

    def send(self, message: Message) -> int:
        assert self.writer is not None
        seq = self.codec.next_seq()
        self.writer.write(encode_message(message, seq, self.codec.session))
        return seq

    def send_raw(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    async def expect(self, cls: Type[M], timeout: float = 5.0) -> Got[M]:
        item = await asyncio.wait_for(self.inbox.get(), timeout)
        if not isinstance(item, Envelope) or not isinstance(item.message, cls):
            raise AssertionError("expected %s, got %r" % (cls.__name__, item))
        return Got(item.message, item.seq)

    async def handshake(self, interval_ms: int = 250) -> None:
        """Answer the agent's hello_request and register it."""
        await self.connected.wait()
        await self.expect(HelloRequest)
        self.codec.start_session()
        self.send(Hello(1, 3))
        ack = await self.expect(HelloAck)
        assert ack.message.version == 1, ack
        init = await self.expect(heartbeat.Init)
        assert init.message.interval_ms == interval_ms, init
        self.send(heartbeat.InitAck(300, 3))

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.server is not None:
            self.server.close()


async def api_call(path: str, request: Any) -> Any:
    """One local API request on its own connection."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(json.dumps(request).encode() + b"\n")
    try:
        return json.loads(await asyncio.wait_for(reader.readline(), 5))
    finally:
        writer.close()


class TestAgentSession(AsyncTestCase):
    """Hello, init, challenges, SGM, errors and exit against a scripted host."""

    def setUp(self) -> None:
        tmp = self.make_tempdir()
        self.chan = os.path.join(tmp, "chan.sock")
        self.api_path = os.path.join(tmp, "api", "agent.sock")
        self.cfg = config.AgentConfig(device=self.chan, interval_ms=250, api_socket=self.api_path)

    def run_with_host(self, script: Any, cfg: Optional[config.AgentConfig] = None) -> List[Any]:
        async def scenario() -> List[Any]:
            host = ScriptedHost(self.chan)
            await host.start()
            the_agent = agent.Agent(cfg or self.cfg)
            running = asyncio.ensure_future(the_agent.run())
            try:
                out = await script(host, the_agent)
                the_agent.stop()
                code = await asyncio.wait_for(running, 5)
                return [code, out]
            finally:
                running.cancel()
                await host.stop()

        return self.run_async(scenario())

    def test_full_session(self) -> None:
        async def script(host: ScriptedHost, the_agent: agent.Agent) -> None:
            await host.handshake()
            await wait_until(lambda: the_agent.registered)
            self.assertEqual((300, 3), (the_agent.reg.interval_ms, the_agent.reg.miss_threshold))
            host.send(heartbeat.Challenge("n1"))
            resp = await host.expect(heartbeat.Response)
            self.assertEqual(heartbeat.Response("n1", "healthy", ""), resp.message)
            self.assertEqual({"ok": True}, await api_call(self.api_path, {
                "op": "report", "source": "app", "health": "unhealthy", "reason": "stuck"}))
            host.send(heartbeat.Challenge("n2"))
            resp = await host.expect(heartbeat.Response)
            self.assertEqual(heartbeat.Response("n2", "unhealthy", "app: stuck"), resp.message)
            # Bad input gets an error reply and the session goes on.
            host.send_raw(b"{not json\n")
            err = await host.expect(Error)
            self.assertEqual("invalid_json", err.message.code)
            # Frames of another session are leftovers: ignored.
            host.send_raw(encode_message(heartbeat.Challenge("old"), 99, "0123456789abcdef"))
            host.send(heartbeat.Challenge("n3"))
            self.assertEqual("n3", (await host.expect(heartbeat.Response)).message.nonce)
            status = await api_call(self.api_path, {"op": "agent_status"})
            self.assertTrue(status["connected"])
            self.assertTrue(status["registered"])
            self.assertEqual(host.codec.session, status["session"])
            self.assertEqual(300, status["interval_ms"])
            self.assertEqual(3, status["miss_threshold"])
            counters = status["counters"]
            self.assertEqual((3, 3, 1, 1), (counters["challenges"], counters["responses"],
                                            counters["protocol_errors"], counters["stale_frames"]))

        async def finish(host: ScriptedHost, the_agent: agent.Agent) -> None:
            await script(host, the_agent)
            the_agent.stop()
            await host.expect(heartbeat.Exit)
            host.send(heartbeat.ExitAck())

        code, _ = self.run_with_host(finish)
        self.assertEqual(0, code)
        self.assertFalse(os.path.exists(self.api_path))

    def test_sgm_round_trips(self) -> None:
        async def script(host: ScriptedHost, the_agent: agent.Agent) -> None:
            await host.handshake()
            # A status request is answered by ref_seq.
            pending = asyncio.ensure_future(api_call(self.api_path, {"op": "group_status", "timeout_s": 3}))
            req = await host.expect(sgm.StatusRequest)
            host.send(sgm.StatusReply(req.seq, (sgm.member_status(MEMBER, "active", "running", True),)))
            reply = await pending
            self.assertEqual([{"uuid": MEMBER, "state": "active", "power_state": "running", "self": True}],
                             reply["members"])
            # A nack fails it.
            pending = asyncio.ensure_future(api_call(self.api_path, {"op": "group_status"}))
            req = await host.expect(sgm.StatusRequest)
            host.send(sgm.Nack(req.seq, "no_group", "not in a server group"))
            self.assertEqual({"ok": False, "error": "nack", "detail": "no_group: not in a server group"},
                             await pending)
            # No reply at all times out.
            reply = await api_call(self.api_path, {"op": "group_status", "timeout_s": 0.2})
            self.assertEqual("timeout", reply["error"])
            await host.expect(sgm.StatusRequest)
            # Broadcasts go out; deliveries and notifications reach listeners.
            reply = await api_call(self.api_path, {"op": "broadcast", "payload": "aGk="})
            self.assertTrue(reply["ok"])
            sent = await host.expect(sgm.Broadcast)
            self.assertEqual(b"hi", sent.message.payload)
            self.assertEqual(reply["seq"], sent.seq)
            host.send(sgm.Nack(sent.seq, "rate_limited"))
            reader, writer = await asyncio.open_unix_connection(self.api_path)
            writer.write(b'{"op":"listen"}\n')
            self.assertEqual({"ok": True}, json.loads(await asyncio.wait_for(reader.readline(), 5)))
            await wait_until(lambda: the_agent.api is not None and the_agent.api.listeners == 1)
            host.send(sgm.BroadcastDeliver(MEMBER, b"yo"))
            host.send(sgm.Notification(MEMBER, "instance.power_off.end", "stopped", "shutdown"))
            self.assertEqual({"event": "broadcast", "sender": MEMBER, "payload": "eW8="},
                             json.loads(await asyncio.wait_for(reader.readline(), 5)))
            self.assertEqual({"event": "notification", "member": MEMBER, "event_type": "instance.power_off.end",
                              "state": "stopped", "power_state": "shutdown"},
                             json.loads(await asyncio.wait_for(reader.readline(), 5)))
            writer.close()
            await wait_until(lambda: the_agent.sgm.counters["broadcast_nacks"] == 1)

        code, _ = self.run_with_host(script)
        self.assertEqual(0, code)

    def test_frames_superseded_in_one_read(self) -> None:
        async def script(host: ScriptedHost, the_agent: agent.Agent) -> None:
            await host.connected.wait()
            await host.expect(HelloRequest)
            old = "00000000000000aa"
            new = host.codec.start_session()
            # What QEMU hands over in one burst after a host came and went.
            host.send_raw(encode_message(Hello(1, 1), 1, old) + encode_message(heartbeat.Challenge("o1"), 2, old)
                          + encode_message(Hello(1, 1), 1, new) + encode_message(heartbeat.Challenge("n1"), 2, new))
            await host.expect(HelloAck)
            await host.expect(heartbeat.Init)
            self.assertEqual("n1", (await host.expect(heartbeat.Response)).message.nonce)
            # Nothing was sent in the old session (the host codec would count it as stale).
            self.assertEqual(0, host.codec.stale_frames)
            self.assertEqual(new, the_agent.codec.session)
            self.assertEqual(1, the_agent.counters["sessions"])
            self.assertEqual(2, the_agent.status()["counters"]["stale_frames"])

        self.run_with_host(script)

    def test_init_resent_without_ack(self) -> None:
        async def script(host: ScriptedHost, the_agent: agent.Agent) -> None:
            await host.connected.wait()
            await host.expect(HelloRequest)
            host.codec.start_session()
            host.send(Hello(1, 1))
            await host.expect(HelloAck)
            # Past MAX_INIT_RETRIES it keeps trying (one WARNING), less and less often.
            for _ in range(2 + registration.MAX_INIT_RETRIES):
                await host.expect(heartbeat.Init, timeout=2)
            self.assertFalse(the_agent.registered)
            # The host forgetting the registration makes the agent register again at once.
            host.send(Error("not_registered", "who are you"))
            await host.expect(heartbeat.Init, timeout=0.1)

        with mock.patch.object(registration, "INIT_RETRY_S", 0.05), \
                mock.patch.object(registration, "MAX_RETRY_S", 0.2):
            with self.assertLogs("ha_guest.guest.registration", "WARNING"):
                self.run_with_host(script)

    def test_registers_again_when_challenges_stop(self) -> None:
        async def script(host: ScriptedHost, the_agent: agent.Agent) -> None:
            await host.connected.wait()
            await host.expect(HelloRequest)
            host.codec.start_session()
            host.send(Hello(1, 1))
            await host.expect(HelloAck)
            await host.expect(heartbeat.Init)
            host.send(heartbeat.InitAck(100, 1))
            for nonce in ("c1", "c2", "c3"):
                host.send(heartbeat.Challenge(nonce))
                await host.expect(heartbeat.Response)
            # The host goes quiet without a word: the agent registers again, and again.
            await host.expect(heartbeat.Init, timeout=3)
            host.send(heartbeat.InitAck(100, 1))
            await host.expect(heartbeat.Init, timeout=3)
            self.assertTrue(the_agent.reg.silent)
            self.assertEqual(2, the_agent.status()["counters"]["reregistrations"])

        with mock.patch.object(registration, "SILENCE_SLACK_S", 0.1), \
                mock.patch.object(registration, "INIT_RETRY_S", 0.1):
            with self.assertLogs("ha_guest.guest.registration", "WARNING") as logs:
                self.run_with_host(script)
        self.assertEqual(1, len(logs.output), logs.output)

    def test_init_refused_before_hello_ack_asks_for_a_hello(self) -> None:
        async def script(host: ScriptedHost, the_agent: agent.Agent) -> None:
            await host.connected.wait()
            await host.expect(HelloRequest)
            host.codec.start_session()
            host.send(Hello(1, 1))
            await host.expect(HelloAck)
            init = await host.expect(heartbeat.Init)
            host.send(Error("unexpected_message", "init before hello_ack", init.seq))
            await host.expect(HelloRequest)
            host.send(Hello(1, 1))  # same session: hello_ack and init again
            await host.expect(HelloAck)
            await host.expect(heartbeat.Init)
            host.send(heartbeat.InitAck(100, 1))
            await wait_until(lambda: the_agent.registered)

        self.run_with_host(script)

    def test_heartbeat_not_enabled_stops_init_for_the_session(self) -> None:
        async def refuse_init(host: ScriptedHost) -> None:
            await host.expect(HelloAck)
            init = await host.expect(heartbeat.Init)
            host.send(Error("not_enabled", "heartbeat is not enabled for this instance", init.seq))

        async def script(host: ScriptedHost, the_agent: agent.Agent) -> None:
            await host.connected.wait()
            await host.expect(HelloRequest)
            host.codec.start_session()
            host.send(Hello(1, 1))
            await refuse_init(host)
            await wait_until(lambda: the_agent.reg.not_enabled)
            # No retry in this session, even after the retry period and a second refusal.
            host.send(Error("not_enabled", "heartbeat is not enabled for this instance", None))
            with self.assertRaises(asyncio.TimeoutError):
                await host.expect(heartbeat.Init, timeout=0.5)
            status = await api_call(self.api_path, {"op": "agent_status"})
            self.assertEqual((True, False, "not_enabled"),
                             (status["heartbeat"], status["registered"], status["heartbeat_state"]))
            self.assertEqual(0, status["counters"]["host_errors"])
            # SGM still works in the same session.
            pending = asyncio.ensure_future(api_call(self.api_path, {"op": "group_status", "timeout_s": 3}))
            req = await host.expect(sgm.StatusRequest)
            host.send(sgm.StatusReply(req.seq, (sgm.member_status(MEMBER, "active", "running", True),)))
            self.assertTrue((await pending)["ok"])
            # The next session tries again.
            host.codec.start_session()
            host.send(Hello(1, 1))
            await refuse_init(host)
            await wait_until(lambda: the_agent.reg.not_enabled and the_agent.counters["sessions"] == 2)
            host.codec.start_session()
            host.send(Hello(1, 1))
            await host.expect(HelloAck)
            await host.expect(heartbeat.Init)
            self.assertEqual("not_registered", the_agent.status()["heartbeat_state"])
            host.send(heartbeat.InitAck(300, 3))
            await wait_until(lambda: the_agent.registered)
            self.assertEqual("registered", the_agent.status()["heartbeat_state"])

        with mock.patch.object(registration, "INIT_RETRY_S", 0.1):
            with self.assertLogs("ha_guest.guest", "INFO") as logs:
                self.run_with_host(script)
        refusals = [line for line in logs.output if registration.NOT_ENABLED_LOG in line]
        self.assertEqual(2, len(refusals), logs.output)
        self.assertTrue(all(line.startswith("INFO:") for line in refusals), refusals)
        self.assertFalse([line for line in logs.output if "host reported" in line], logs.output)

    def test_unsupported_version_and_no_heartbeat(self) -> None:
        async def script(host: ScriptedHost, the_agent: agent.Agent) -> None:
            await host.connected.wait()
            await host.expect(HelloRequest)
            host.codec.start_session()
            hello_seq = host.send(Hello(7, 9))
            err = await host.expect(Error)
            self.assertEqual(("unsupported_version", hello_seq), (err.message.code, err.message.ref_seq))
            host.send(Hello(1, 1))
            await host.expect(HelloAck)
            # Heartbeat is off: no init follows, but challenges are still answered.
            host.send(heartbeat.Challenge("n1"))
            self.assertEqual("n1", (await host.expect(heartbeat.Response)).message.nonce)

        cfg = config.AgentConfig(device=self.chan, heartbeat=False, api_socket=None)
        code, _ = self.run_with_host(script, cfg)
        self.assertEqual(0, code)

    def test_reconnect_after_host_drops(self) -> None:
        async def script(host: ScriptedHost, the_agent: agent.Agent) -> None:
            await host.handshake()
            await wait_until(lambda: the_agent.registered)
            host.connected.clear()
            assert host.writer is not None
            host.writer.close()
            await asyncio.wait_for(host.connected.wait(), 5)
            await host.handshake()
            await wait_until(lambda: the_agent.registered)
            self.assertEqual(2, host.connections)
            self.assertEqual(1, the_agent.status()["counters"]["reconnects"])

        with self.assertLogs("ha_guest.guest.agent", "INFO") as logs:
            self.run_with_host(script)
        self.assertEqual(1, sum("host side gone" in line for line in logs.output))

    def test_bad_frames_from_codec_are_rate_limited(self) -> None:
        async def script(host: ScriptedHost, the_agent: agent.Agent) -> None:
            await host.handshake()
            host.send_raw(b"garbage\n" * 200)
            host.send(heartbeat.Challenge("after"))
            errors_seen = 0
            while True:
                item = await asyncio.wait_for(host.inbox.get(), 5)
                if isinstance(item, ProtocolError):
                    continue
                if isinstance(item.message, Error):
                    errors_seen += 1
                elif isinstance(item.message, heartbeat.Response):
                    break
            self.assertLessEqual(errors_seen, 20)
            self.assertEqual(200, the_agent.counters["protocol_errors"])

        self.run_with_host(script)


class TestAgentStartup(AsyncTestCase):
    """Fatal start-up problems end run() with status 1."""

    def test_api_socket_in_use(self) -> None:
        tmp = self.make_tempdir()
        path = os.path.join(tmp, "agent.sock")

        async def scenario() -> int:
            first = agent.Agent(config.AgentConfig(device=os.path.join(tmp, "none"), api_socket=path))
            assert first.api is not None
            await first.api.start()
            try:
                second = agent.Agent(config.AgentConfig(device=os.path.join(tmp, "none"), api_socket=path))
                return await second.run()
            finally:
                await first.api.stop()

        with self.assertLogs("ha_guest.guest.agent", "ERROR"):
            self.assertEqual(1, self.run_async(scenario()))
