"""Fuzz targets: a real GuestChannel (monitor, scheduler, SGM relay) and a real guest Agent, on a fake clock.

Both run on one asyncio loop whose clock only moves when the feeder says
so, so rate limits, read pauses, hello retries and heartbeat misses act the
same way on every run of an input. No sockets: the host channel gets a fake
transport (its reconnection makes a new one) and is fed through its public
entry points, get_buffer/buffer_updated and data_received, in the chunks
the input chooses; the agent gets a fake channel and its read callback.

An input fails when a target raises, logs an ERROR (the host channel logs
and drops the connection on any exception a guest's bytes cause), the loop
reports an exception, a side writes a frame its peer could not decode, or a
decoder holds more than a frame's worth of bytes.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from typing import Any, Callable, Dict, Iterator, List, Optional

from ha_guest.compute import fastpath
from ha_guest.compute.channel import ChannelSettings, GuestChannel
from ha_guest.compute.discovery.base import Features
from ha_guest.compute.heartbeat_monitor import GuestMonitor, HeartbeatPolicy, MonitorEvent
from ha_guest.compute.scheduler import TickScheduler
from ha_guest.compute.sgm_relay import SgmRelay
from ha_guest.guest.agent import Agent
from ha_guest.guest.config import AgentConfig
from ha_guest.protocol import errors, heartbeat
from ha_guest.protocol.envelope import decode
from ha_guest.protocol.limits import MAX_FRAME_BYTES
from ha_guest.protocol.messages import Hello, HelloAck
from tests.fuzz import inputs

UUID = "0f0f0f0f-1111-4222-8333-444444444444"
PEER_UUID = "0f0f0f0f-1111-4222-8333-555555555555"
GUEST_SESSION = "00112233aabbccdd"
_SESSION = inputs.SESSION.encode()
_NONCE = inputs.NONCE.encode()
#: Clock steps taken while the host has paused reading (the kernel holds the bytes meanwhile).
_PAUSE_STEP_S = 0.05
_MAX_PAUSE_STEPS = 400
#: Bounds on one input's cost, so a million inputs take minutes: at most this many bytes, in at most
#: about this many reads (a long stream is read in larger chunks).
MAX_STREAM_BYTES = 24 * 1024
#: The guest agent trusts its host and has no byte budget: long floods only cost time there.
MAX_GUEST_STREAM_BYTES = 6 * 1024
MAX_READS = 64


class FuzzFailure(AssertionError):
    """An input broke a target."""


class FuzzLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock moves only when told."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def has_due(self) -> bool:
        """Whether a callback is ready or a timer is due (then a loop iteration has work)."""
        return bool(self._ready) or bool(self._scheduled and self._scheduled[0].when() <= self.now)  # type: ignore[attr-defined]


class Problems(logging.Handler):
    """Collects ERROR lines and lines with a traceback from ha_guest and asyncio."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.found: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.found.append("%s: %s%s" % (record.name, record.getMessage(),
                                            " (%r)" % (record.exc_info[1],) if record.exc_info else ""))


class Harness:
    """The loop, the problem collectors and the figures shared by both targets for a whole run."""

    def __init__(self) -> None:
        self.loop = FuzzLoop()
        self.problems = Problems()
        self.loop.set_exception_handler(self._loop_exception)
        self._loggers = [logging.getLogger(name) for name in ("ha_guest", "asyncio")]
        self._saved = [(logger.level, logger.propagate) for logger in self._loggers]
        for logger in self._loggers:
            logger.addHandler(self.problems)
            logger.setLevel(logging.WARNING)  # WARNING lines are formatted only if they carry a traceback
            logger.propagate = False
        self.host = HostTarget(self)
        self.guest = GuestTarget(self)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
        self.problems.found.append("loop: %s (%r)" % (context.get("message"), context.get("exception")))

    def check(self, what: str) -> None:
        """Raise FuzzFailure if anything went wrong since the last check."""
        if self.problems.found:
            found, self.problems.found = self.problems.found, []
            raise FuzzFailure("%s: %s" % (what, "; ".join(found[:5])))

    async def step(self, seconds: float) -> None:
        """Move the clock and let due timers run."""
        self.loop.now += max(0.0, seconds)
        # Twice: this task resumes before the timers that became due in the same iteration run.
        for _ in range(2):
            if not self.loop.has_due():
                break
            await asyncio.sleep(0)

    def close(self) -> None:
        """Close the loop and detach the log handler."""
        for logger, (level, propagate) in zip(self._loggers, self._saved, strict=True):
            logger.removeHandler(self.problems)
            logger.setLevel(level)
            logger.propagate = propagate
        self.loop.close()


def _cycle(values: Any) -> Iterator[Any]:
    return itertools.cycle(values)


def _check_frames(data: bytes, side: str, on_frame: Optional[Callable[[Any], None]] = None) -> None:
    """Every frame a side writes must decode on the other side."""
    if not data.endswith(b"\n"):
        raise FuzzFailure("%s wrote a partial frame: %r" % (side, data[:200]))
    for line in data[:-1].split(b"\n"):
        try:
            env = decode(line)
        except errors.ProtocolError as exc:
            raise FuzzFailure("%s wrote a frame its peer rejects (%s): %r" % (side, exc, line[:200])) from None
        if on_frame is not None:
            on_frame(env)


class FakeTransport(asyncio.Transport):
    """Stands in for the UNIX socket transport of one connection."""

    def __init__(self, target: "HostTarget", protocol: "FuzzChannel") -> None:
        super().__init__()
        self.target = target
        self.protocol = protocol
        self.closing = False
        self.paused = False

    def write(self, data: Any) -> None:
        if self.closing:
            return
        self.target.host_wrote(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        if not self.closing:
            self.closing = True
            self.target.harness.loop.call_soon(self.protocol.connection_lost, None)

    close = abort

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused and not self.closing


class FuzzChannel(GuestChannel):
    """A GuestChannel whose (re)connection succeeds at once with a fake transport."""

    target: "HostTarget"

    def _connect_now(self) -> None:
        if self._closing or self.transport is not None:
            return
        self.connection_made(FakeTransport(self.target, self))


class FakeSender:
    """Stands in for SgmSender: takes every broadcast, answers status requests at once."""

    def __init__(self, target: "HostTarget") -> None:
        self.target = target
        self.counters: Dict[str, int] = {"broadcasts": 0, "status": 0}

    def broadcast(self, item: Dict[str, Any]) -> bool:
        self.counters["broadcasts"] += 1
        return self.counters["broadcasts"] % 7 != 0  # now and then the queue is full

    def status(self, uuid: str, on_answer: Callable[[Dict[str, Any]], None]) -> bool:
        self.counters["status"] += 1
        members = [{"uuid": uuid, "state": "active", "power_state": "running"},
                   {"uuid": PEER_UUID, "state": "error"}]
        on_answer({"members": members} if self.counters["status"] % 3 else {"nack": "no_group", "detail": "x"})
        return True

    def pending(self) -> int:
        return 0


class HostTarget:
    """One instance's channel on the compute host, fed a guest's bytes."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.buffer = fastpath.read_buffer()
        self.relay = SgmRelay(harness.loop, "fuzz-host", FakeSender(self), self._channel_of)  # type: ignore[arg-type]
        self.channel: Optional[FuzzChannel] = None
        self.nonce = b"none"
        self.runs = 0
        self.frames_written = 0
        self.events: "collections.Counter[str]" = collections.Counter()

    def _channel_of(self, uuid: str) -> Optional[FuzzChannel]:
        return self.channel if uuid == UUID else None

    def host_wrote(self, data: bytes) -> None:
        """Check a write of the host and remember the nonce of a challenge."""
        self.frames_written += data.count(b"\n")
        _check_frames(data, "host", self._saw)

    def _saw(self, env: Any) -> None:
        if isinstance(env.message, heartbeat.Challenge):
            self.nonce = env.message.nonce.encode()

    def _event(self, event: MonitorEvent) -> None:
        self.events[event.kind.value] += 1

    def run(self, inp: inputs.FuzzInput) -> None:
        """Feed one input to a fresh channel; raise FuzzFailure if anything broke."""
        self.runs += 1
        try:
            self.harness.loop.run_until_complete(self._run(inp))
        finally:
            self.channel = None
        self.harness.check("host channel")

    async def _run(self, inp: inputs.FuzzInput) -> None:
        harness = self.harness
        scheduler = TickScheduler()
        channel = FuzzChannel(harness.loop, UUID, "/nonexistent/fuzz.sock", scheduler, ChannelSettings(),
                              buffer=self.buffer)
        channel.target = self
        channel.monitor = GuestMonitor(UUID, channel.send_challenge, self._event, HeartbeatPolicy(late_s=0.02))
        channel.features = Features(heartbeat=inp.heartbeat, server_group_messaging=inp.sgm)
        channel.sgm = self.relay.on_request
        self.channel = channel
        self.nonce = b"none"
        channel.start()
        pieces = list(inp.pieces)
        if inp.prelude:
            pieces.insert(0, inputs.frame(HelloAck(1, "fuzz"), 1, inputs.SESSION, 1)
                          + inputs.frame(heartbeat.Init(inp.interval_ms), 2, inputs.SESSION, 1))
        sizes, buffered, steps = (_cycle(inp.delivery.chunk_sizes), _cycle(inp.delivery.use_buffer),
                                  _cycle(inp.delivery.clock_steps))
        pending = bytearray()
        floor = sum(map(len, pieces)) // MAX_READS
        left = MAX_STREAM_BYTES
        for piece in pieces:
            if left <= 0:
                break
            if pending and (_SESSION in piece or _NONCE in piece):
                # Fill in the session and nonce as they are when the piece is read, as a guest would.
                await self._read(channel, bytes(pending), next(buffered), next(steps), scheduler)
                del pending[:]
            session = (channel.codec.session or "none").encode()
            piece = piece.replace(_SESSION, session).replace(_NONCE, self.nonce)[:left]
            left -= len(piece)
            pending += piece
            size = max(floor, next(sizes))
            while len(pending) >= size:
                await self._read(channel, bytes(pending[:size]), next(buffered), next(steps), scheduler)
                del pending[:size]
                size = max(floor, next(sizes))
        if pending:
            await self._read(channel, bytes(pending), next(buffered), next(steps), scheduler)
        await harness.step(next(steps))
        scheduler.run_due(harness.loop.now)
        if channel.codec.decoder.pending_bytes > MAX_FRAME_BYTES:
            raise FuzzFailure("host decoder holds %d bytes" % channel.codec.decoder.pending_bytes)
        self.events["answers_taken"] += channel.monitor.stats.responses
        channel.close()
        await harness.step(0.0)

    async def _read(self, channel: FuzzChannel, data: bytes, buffered: bool, step: float,
                    scheduler: TickScheduler) -> None:
        """Deliver one read of the guest's bytes as the loop would."""
        harness = self.harness
        await harness.step(step)
        scheduler.run_due(harness.loop.now)
        while data:
            for _ in range(_MAX_PAUSE_STEPS):
                transport = channel.transport
                if transport is not None and not transport.is_closing() and not getattr(transport, "paused", False):
                    break
                # Paused (the kernel holds the bytes) or reconnecting: time passes.
                await harness.step(_PAUSE_STEP_S)
                scheduler.run_due(harness.loop.now)
            else:
                return  # never read again: the rest is lost with the connection
            if buffered:
                buf = channel.get_buffer(len(data))
                count = min(len(buf), len(data))
                buf[:count] = data[:count]
                channel.buffer_updated(count)
            else:
                count = len(data)
                channel.data_received(data)
            data = data[count:]
        scheduler.run_due(harness.loop.now)  # the tick that follows the read (a registration's first challenge)


class FakeGuestChannel:
    """Stands in for the agent's transport.Channel: checks what the agent writes."""

    path = "/dev/virtio-ports/fuzz"

    def __init__(self, target: "GuestTarget") -> None:
        self.target = target
        self.closed = False

    def send(self, data: bytes) -> bool:
        self.target.frames_written += data.count(b"\n")
        _check_frames(data, "guest agent")
        return True


class GuestTarget:
    """The guest agent's frame handling (codec and dispatch), fed a host's bytes."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.runs = 0
        self.frames_written = 0

    def run(self, inp: inputs.FuzzInput) -> None:
        """Feed one input to a fresh agent; raise FuzzFailure if anything broke."""
        self.runs += 1
        self.harness.loop.run_until_complete(self._run(inp))
        self.harness.check("guest agent")

    async def _run(self, inp: inputs.FuzzInput) -> None:
        harness = self.harness
        agent = Agent(AgentConfig(heartbeat=inp.heartbeat, api_socket=None, interval_ms=inp.interval_ms),
                      resolve=lambda: None)
        channel = FakeGuestChannel(self)
        agent._on_open(channel)  # type: ignore[arg-type]
        pieces = list(inp.pieces)
        if inp.prelude:
            pieces.insert(0, inputs.frame(Hello(1, 1), 1, inputs.SESSION, 1))
        sizes, steps = _cycle(inp.delivery.chunk_sizes), _cycle(inp.delivery.clock_steps)
        stream = b"".join(pieces).replace(_SESSION, GUEST_SESSION.encode()).replace(_NONCE, b"n0nce")
        stream = stream[:MAX_GUEST_STREAM_BYTES]
        floor, at = len(stream) // MAX_READS, 0
        try:
            while at < len(stream):
                await harness.step(next(steps))
                size = max(floor, next(sizes))
                agent._on_data(stream[at:at + size])
                at += size
                if agent.codec.decoder.pending_bytes > MAX_FRAME_BYTES:
                    raise FuzzFailure("guest decoder holds %d bytes" % agent.codec.decoder.pending_bytes)
            await harness.step(next(steps))
        finally:
            agent._on_lost("fuzz input ended")
            agent.reg.cancel()
            for log in (agent._error_log, agent._host_error_log, agent.sgm.nack_log):
                log.cancel()
            await harness.step(0.0)
