"""Helpers for the compute agent's unit tests: a guest end of a channel socket, loops, fakes."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import unittest
from typing import Any, Awaitable, Callable, Dict, List, Optional, Type, TypeVar

from ha_guest.compute.channel import ChannelSettings, GuestChannel
from ha_guest.compute.heartbeat_monitor import GuestMonitor, HeartbeatPolicy, MonitorEvent
from ha_guest.compute.scheduler import TickScheduler
from ha_guest.protocol import GUEST, ChannelCodec, heartbeat
from ha_guest.protocol.envelope import Envelope, encode_message
from ha_guest.protocol.errors import ProtocolError
from ha_guest.protocol.messages import Hello, HelloAck, Message

T = TypeVar("T")
M = TypeVar("M", bound=Message)
TEST_TIMEOUT_S = 20.0
UUID = "6b3c1f0e-2a4d-4c8e-9f17-5d2b8a0c4e91"


def make_tempdir(test: unittest.TestCase) -> str:
    """A short temporary folder (AF_UNIX paths are limited to 107 bytes), removed at cleanup."""
    path = tempfile.mkdtemp(prefix="hgc-", dir="/tmp")
    test.addCleanup(shutil.rmtree, path, True)
    return path


async def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy; AssertionError after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError("timed out after %gs waiting for %s" % (timeout, what))
        await asyncio.sleep(0.005)


class _GuestConnection(asyncio.Protocol):
    def __init__(self, owner: "FakeGuest") -> None:
        self.owner = owner
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.owner._connected(self)

    def data_received(self, data: bytes) -> None:
        self.owner._received(self, data)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.owner._lost(self)


class FakeGuest:
    """QEMU's listening socket and a scripted guest agent in one (the compute side connects to it)."""

    def __init__(self, path: str, *, interval_ms: int = 100, answer: bool = True, auto_hello: bool = True,
                 health: str = heartbeat.HEALTHY, reason: str = "") -> None:
        self.path = path
        self.interval_ms = interval_ms
        self.answer = answer
        self.auto_hello = auto_hello
        self.health = health
        self.reason = reason
        self.codec = ChannelCodec(GUEST)
        self.frames: List[Envelope] = []
        self.errors: List[ProtocolError] = []
        self.connections = 0
        self.sessions: List[str] = []
        self.conn: Optional[_GuestConnection] = None
        self.server: Optional[asyncio.AbstractServer] = None

    async def start(self) -> "FakeGuest":
        self.server = await asyncio.get_running_loop().create_unix_server(lambda: _GuestConnection(self), self.path)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        self.drop()

    def drop(self) -> None:
        """Close the current connection, like QEMU going away."""
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.abort()

    def send(self, message: Message) -> int:
        seq = self.codec.next_seq()
        self.send_raw(encode_message(message, seq, self.codec.session, self.codec.version))
        return seq

    def send_raw(self, data: bytes) -> None:
        assert self.conn is not None and self.conn.transport is not None, "no connection"
        self.conn.transport.write(data)

    def of_type(self, cls: Type[M]) -> List[M]:
        return [f.message for f in self.frames if isinstance(f.message, cls)]  # type: ignore[misc]

    def _connected(self, conn: _GuestConnection) -> None:
        self.conn = conn
        self.connections += 1
        self.codec.reset()

    def _lost(self, conn: _GuestConnection) -> None:
        if self.conn is conn:
            self.conn = None

    def _received(self, conn: _GuestConnection, data: bytes) -> None:
        for item in self.codec.feed(data):
            if isinstance(item, ProtocolError):
                self.errors.append(item)
                continue
            self.frames.append(item)
            message = item.message
            if isinstance(message, Hello) and self.auto_hello:
                assert item.session is not None
                self.sessions.append(item.session)
                self.send(HelloAck(1, "fake-guest/1"))
                self.send(heartbeat.Init(self.interval_ms))
            elif isinstance(message, heartbeat.Challenge) and self.answer:
                self.send(heartbeat.Response(message.nonce, self.health, self.reason))


class ChannelHarness:
    """A GuestChannel with its monitor and a ticking scheduler on the running loop."""

    def __init__(self, path: str, settings: Optional[ChannelSettings] = None,
                 policy: Optional[HeartbeatPolicy] = None, tick_s: float = 0.01) -> None:
        self.loop = asyncio.get_running_loop()
        self.scheduler = TickScheduler()
        self.events: List[MonitorEvent] = []
        self.channel = GuestChannel(self.loop, UUID, path, self.scheduler, settings or ChannelSettings())
        self.monitor = GuestMonitor(UUID, self.channel.send_challenge, self.events.append,
                                    policy or HeartbeatPolicy())
        self.channel.monitor = self.monitor
        self._tick_s = tick_s
        self._ticker = self.loop.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            self.scheduler.run_due(self.loop.time())
            await asyncio.sleep(self._tick_s)

    def kinds(self, kind: Any) -> List[MonitorEvent]:
        return [e for e in self.events if e.kind == kind]

    async def close(self) -> None:
        self._ticker.cancel()
        self.channel.close()
        await asyncio.sleep(0)


class AsyncTestCase(unittest.TestCase):
    """Runs each coroutine in a fresh loop under a hard timeout."""

    def run_async(self, coro: Awaitable[T], timeout: float = TEST_TIMEOUT_S) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(coro, timeout)

        return asyncio.run(bounded())

    def socket_path(self, name: str = "guest.sock") -> str:
        return os.path.join(make_tempdir(self), name)


class FakeController:
    """Records the reports of the Reporter; can be told to fail."""

    def __init__(self) -> None:
        self.calls: List[tuple[str, Dict[str, Any]]] = []
        self.failures: List[BaseException] = []  # raised (in order) before calls succeed
        self.attempts = 0

    def _call(self, name: str, payload: Dict[str, Any]) -> Any:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.calls.append((name, payload))
        return {"duplicate": False} if name == "report_fault" else None

    def report_fault(self, ctxt: Any, fault: Dict[str, Any]) -> Any:
        return self._call("report_fault", fault)

    def report_recovery(self, ctxt: Any, recovery: Dict[str, Any]) -> Any:
        return self._call("report_recovery", recovery)

    def report_exit(self, ctxt: Any, exit: Dict[str, Any]) -> Any:
        return self._call("report_exit", exit)

    def report_state(self, ctxt: Any, report: Dict[str, Any]) -> Any:
        return self._call("report_state", report)

    def names(self) -> List[str]:
        return [name for name, _ in self.calls]
