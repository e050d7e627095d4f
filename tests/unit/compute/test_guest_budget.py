"""Guest budgets: bytes and lines charged per read before any parsing, reading paused past them."""

from __future__ import annotations

import asyncio
import unittest
from typing import Any, Callable, List, Tuple

from ha_guest.compute.channel import ChannelSettings, GuestChannel
from ha_guest.compute.guest_budget import GuestBudget
from ha_guest.compute.heartbeat_monitor import EventKind, GuestMonitor, GuestState, HeartbeatPolicy
from ha_guest.compute.scheduler import TickScheduler
from ha_guest.protocol import errors, heartbeat
from ha_guest.protocol.codec import GUEST, ChannelCodec
from ha_guest.protocol.messages import Error, HelloAck
from tests.unit.compute.base import UUID, wait_until
from tests.unit.compute.test_channel import ChannelTestCase


class TestGuestBudget(unittest.TestCase):

    def assertAvailable(self, expected: Tuple[float, float], budget: GuestBudget, now: float) -> None:
        self.assertEqual(expected, tuple(round(value, 6) for value in budget.available(now)))

    def test_burst_then_rate_for_bytes_and_lines(self) -> None:
        budget = GuestBudget(1000.0, 4000, 10.0, 20, now=100.0)
        self.assertTrue(budget.charge(3000, 5, 100.0))
        self.assertAvailable((1000.0, 15.0), budget, 100.0)
        self.assertFalse(budget.charge(1001, 1, 100.0))  # bytes short: dropped, and charged
        self.assertAvailable((0.0, 14.0), budget, 100.0)
        self.assertTrue(budget.charge(1000, 10, 101.0))  # refilled 1 s worth of each (lines up to the burst)
        self.assertAvailable((0.0, 10.0), budget, 101.0)
        self.assertFalse(budget.charge(101, 1, 101.1))  # 100 bytes refilled: one short
        self.assertFalse(budget.charge(0, 12, 101.2))  # 1 line refilled: 12 > 9 + 1 + 1
        self.assertAlmostEqual(0.0, budget.available(101.2)[1])  # charged down to zero

    def test_a_read_that_does_not_fit_is_charged_down_to_zero(self) -> None:
        budget = GuestBudget(1000.0, 4000, 10.0, 20, now=0.0)
        self.assertFalse(budget.charge(100, 16386, 0.0))  # 16 KiB of line feeds
        self.assertAvailable((3900.0, 0.0), budget, 0.0)  # bytes charged too, lines floored at zero
        self.assertFalse(budget.charge(16386, 0, 0.0))  # 16 KiB of one line that never ends
        self.assertAvailable((0.0, 0.0), budget, 0.0)
        # No debt beyond zero: a pause of 0.1 s earns 100 bytes and one line.
        self.assertTrue(budget.charge(100, 1, 0.1))

    def test_refills_to_the_burst_only(self) -> None:
        budget = GuestBudget(1000.0, 4000, 10.0, 20, now=0.0)
        budget.charge(4000, 20, 0.0)
        self.assertAvailable((4000.0, 20.0), budget, 3600.0)
        self.assertFalse(budget.charge(4001, 1, 3600.0))
        self.assertFalse(budget.charge(1, 21, 3600.0))

    def test_a_clock_that_stands_still_or_goes_back_refills_nothing(self) -> None:
        budget = GuestBudget(1000.0, 4000, 10.0, 20, now=5.0)
        budget.charge(4000, 20, 5.0)
        self.assertFalse(budget.charge(1, 0, 4.0))
        self.assertFalse(budget.charge(1, 0, 5.0))

    def test_invalid(self) -> None:
        for args in ((0, 1, 1, 1), (1, 0, 1, 1), (1, 1, 0, 1), (1, 1, 1, 0)):
            self.assertRaises(ValueError, GuestBudget, *args, 0.0)


class FakeLoop:
    """Just what a GuestChannel asks of its loop: the time, and timers run by hand."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.timers: List[Tuple[float, Callable[[], Any], "FakeHandle"]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> "FakeHandle":
        handle = FakeHandle()
        self.timers.append((self.now + delay, lambda: callback(*args), handle))
        return handle

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self.timers if t[0] <= self.now and not t[2].cancelled]
        self.timers = [t for t in self.timers if t not in due]
        for _, callback, _ in due:
            callback()


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: List[bytes] = []
        self.paused = False
        self.pauses = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.closing = True


class BudgetedChannel(unittest.TestCase):
    """A GuestChannel on a fake loop and transport, fed by hand through the shared read buffer."""

    SETTINGS = ChannelSettings(guest_frame_rate=50, guest_frame_burst=100, guest_byte_rate=8192,
                               guest_byte_burst=16386, guest_pause_s=0.1)

    def setUp(self) -> None:
        self.loop = FakeLoop()
        self.channel = GuestChannel(self.loop, UUID, "/nonexistent", TickScheduler(),  # type: ignore[arg-type]
                                    self.SETTINGS)
        self.monitor = GuestMonitor(UUID, self.channel.send_challenge, lambda event: None,
                                    HeartbeatPolicy(min_interval_ms=100))
        self.channel.monitor = self.monitor
        self.transport = FakeTransport()
        self.channel.connection_made(self.transport)  # type: ignore[arg-type]
        self.guest = ChannelCodec(GUEST)
        self.guest.session = self.channel.codec.session

    def read(self, data: bytes) -> None:
        """What the event loop does for one read: fill the shared buffer, then buffer_updated."""
        self.channel.buffer[:len(data)] = data
        self.channel.buffer_updated(len(data))

    def frame(self, message: Any) -> bytes:
        return self.guest.encode(message)

    def replies(self, cls: Any) -> List[Any]:
        host = ChannelCodec(GUEST)
        host.session = self.channel.codec.session
        return [item.message for item in host.feed(b"".join(self.transport.written))
                if not isinstance(item, errors.ProtocolError) and isinstance(item.message, cls)]

    def counters(self, *names: str) -> Tuple[int, ...]:
        return tuple(self.channel.counters[name] for name in names)

    def test_blank_line_flood_is_charged_and_pauses_reading(self) -> None:
        decoder = self.channel.codec.decoder
        self.read(b"\n" * 16386)  # one full read of line feeds: 16386 lines against a burst of 100
        self.assertEqual((1, 1, 16386, 0), self.counters("paused", "rate_limited", "bytes_dropped", "frames"))
        self.assertTrue(self.transport.paused)
        self.assertEqual(0, decoder.frames_decoded + decoder.pending_bytes)  # never parsed
        self.assertEqual([errors.RATE_LIMITED], [e.code for e in self.replies(Error)])
        self.loop.advance(0.1)
        self.assertFalse(self.transport.paused)
        # Short blank-line reads are charged one line each: the burst, then paused again.
        for _ in range(5):  # 0.1 s refilled 5 lines
            self.read(b"\n")
        self.assertEqual(1, self.transport.pauses)
        self.read(b"\n")
        self.assertEqual(2, self.transport.pauses)

    def test_blank_lines_count_like_frames(self) -> None:
        for _ in range(100):  # the line burst, in blank lines
            self.read(b"\r\n")
        self.assertFalse(self.transport.paused)
        self.read(self.frame(HelloAck(1, "guest")))  # the 101st line: dropped unparsed
        self.assertTrue(self.transport.paused)
        self.assertFalse(self.channel.hello_acked)

    def test_partial_line_that_never_ends_is_charged(self) -> None:
        for _ in range(4):
            self.read(b"x" * 4096)  # 16384 bytes of one line: within the byte burst
        self.assertFalse(self.transport.paused)
        self.read(b"x" * 4096)
        self.assertTrue(self.transport.paused)
        self.assertEqual((1, 4096), self.counters("paused", "bytes_dropped"))
        self.loop.advance(1.0)
        # The tail of the dropped line is dropped in turn; the next frame is read as one.
        self.read(b"x" * 100 + b"\n" + self.frame(HelloAck(1, "guest")))
        self.assertTrue(self.channel.hello_acked)
        self.assertEqual(1, self.channel.counters["protocol_errors"])  # frame_too_large, once, from the decoder

    def test_oversized_lines_are_charged(self) -> None:
        line = b"y" * 9000 + b"\n"
        self.read(line)
        self.assertEqual((0, 1), self.counters("paused", "protocol_errors"))  # frame_too_large
        self.read(line)  # 18002 bytes in all: over the 16386-byte burst
        self.assertEqual((1, 1, 9001), self.counters("paused", "protocol_errors", "bytes_dropped"))

    def test_healthy_answers_are_charged(self) -> None:
        self.read(self.frame(HelloAck(1, "guest")) + self.frame(heartbeat.Init(100)))
        self.assertEqual(GuestState.HEALTHY, self.monitor.state)
        budget = self.channel._budget
        for _ in range(100):  # 10 s at 100 ms: far below the budget, never paused
            self.loop.advance(0.1)
            self.channel.scheduler.run_due(self.loop.now)
            answer = self.frame(heartbeat.Response(self.replies(heartbeat.Challenge)[-1].nonce, heartbeat.HEALTHY, ""))
            before = budget.available(self.loop.now)
            self.read(answer)
            after = budget.available(self.loop.now)
            charged = (round(before[0] - after[0], 6), round(before[1] - after[1], 6))
            self.assertEqual((float(len(answer)), 1.0), charged)
        self.assertEqual((0, 100), (self.channel.counters["paused"], self.monitor.stats.responses))


class TestOnASocket(ChannelTestCase):

    def test_blank_line_flood_then_the_guest_hangs_and_is_reported(self) -> None:
        async def scenario() -> None:
            async with self.connected() as (guest, h):
                await wait_until(lambda: h.monitor.stats.responses >= 2, what="answers")
                for _ in range(8):
                    guest.send_raw(b"\n" * 65536)
                    await asyncio.sleep(1 / 16)
                await wait_until(lambda: h.channel.counters["paused"] >= 2, what="reading paused")
                self.assertEqual(0, h.channel.counters["protocol_errors"])
                guest.answer = False
                fault = (await wait_until(lambda: h.kinds(EventKind.FAULT), timeout=10.0, what="a fault"))[0]
                self.assertEqual("missed", fault.fault_kind)
        self.run_async(scenario())

    def test_the_channel_works_again_after_a_flood(self) -> None:
        async def scenario() -> None:
            async with self.connected() as (guest, h):
                await wait_until(lambda: h.monitor.stats.responses >= 2, what="answers")
                guest.send_raw(b"ab\n" * 20000)  # short junk lines, 60 KB
                await wait_until(lambda: h.channel.counters["paused"] >= 1, what="reading paused")
                answered = h.monitor.stats.responses
                await wait_until(lambda: h.monitor.stats.responses > answered + 2, timeout=10.0,
                                 what="answers again")
                self.assertLessEqual(h.channel.counters["protocol_errors"], 100)  # the line burst at most
        self.run_async(scenario())
