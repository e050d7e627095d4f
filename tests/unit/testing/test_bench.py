"""The benchmark's guests speak the protocol the real guest agent speaks; its figures are computed right."""

from __future__ import annotations

import asyncio
from typing import Any

import testtools

from ha_guest.compute import fastpath
from ha_guest.protocol import GUEST, HOST, ChannelCodec, Envelope, Hello, HelloAck, heartbeat
from ha_guest.protocol.envelope import encode_message
from ha_guest.testing import bench_guests
from ha_guest.testing.bench_report import percentile, safe_url


class RecordingTransport(asyncio.Transport):
    """Collects what the guest writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b''

    def write(self, data: Any) -> None:
        self.written += bytes(data)


class TestBenchGuest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.guest = bench_guests.Guest('7d2a6f0e-1b7d-4e52-9a51-0c3f5e7d9a01', 100)
        self.connection = bench_guests.GuestConnection(self.guest)
        self.transport = RecordingTransport()
        self.connection.connection_made(self.transport)
        self.host = ChannelCodec(HOST)
        self.host.start_session()

    def exchange(self, *messages: Any) -> list[Any]:
        """Send host frames to the guest; return the messages it answered with."""
        self.transport.written = b''
        self.connection.data_received(b''.join(self.host.encode(m) for m in messages))
        return [item.message for item in self.host.feed(self.transport.written) if isinstance(item, Envelope)]

    def test_hello_init_and_answers(self) -> None:
        ack, init = self.exchange(Hello())
        self.assertIsInstance(ack, HelloAck)
        self.assertEqual(heartbeat.Init(100), init)
        self.exchange(heartbeat.InitAck(100, 1))
        self.assertTrue(self.guest.registered)
        # Two challenges in one read: both answered, through the shortcut, decodable by the host.
        answers = self.exchange(heartbeat.Challenge('abc123'), heartbeat.Challenge('def456'))
        self.assertEqual([heartbeat.Response('abc123', 'healthy', ''), heartbeat.Response('def456', 'healthy', '')],
                         answers)
        self.assertEqual(2, self.guest.answered)

    def test_hung_guest_answers_nothing(self) -> None:
        self.exchange(Hello())
        self.guest.hung = True
        self.assertEqual([], self.exchange(heartbeat.Challenge('abc123')))
        self.guest.hung = False
        self.assertEqual([heartbeat.Response('abc124', 'healthy', '')], self.exchange(heartbeat.Challenge('abc124')))

    def test_shortcut_is_the_codecs_own_encoding(self) -> None:
        codec = ChannelCodec(GUEST)
        codec.session, codec.version = '0123456789abcdef', 1
        frame = bench_guests.response_template(codec) % (42, b'n0nce')
        self.assertEqual(encode_message(heartbeat.Response('n0nce', 'healthy', ''), 42, codec.session, 1), frame)
        # ... and the compute agent's own fast path recognises it.
        self.assertIsNotNone(fastpath.healthy_response(frame.rstrip(b'\n')))


class TestReport(testtools.TestCase):

    def test_percentile_nearest_rank(self) -> None:
        values = [float(v) for v in range(1, 101)]
        self.assertEqual((50.0, 99.0, 100.0), (percentile(values, 0.5), percentile(values, 0.99),
                                               percentile(values, 1.0)))
        self.assertEqual(7.0, percentile([7.0], 0.99))
        self.assertIsNone(percentile([], 0.5))

    def test_safe_url_hides_credentials(self) -> None:
        self.assertEqual('rabbit://h1:5672,h2:5672/', safe_url('rabbit://u:secret@h1:5672,u:secret@h2:5672/'))


class TestHelperStalls(testtools.TestCase):
    """A helper notes when its own loop stalled: its guests' misses then are the test's, not the host's."""

    def test_a_blocked_loop_is_a_stall(self) -> None:
        import collections
        import time

        async def run() -> list[tuple[float, float]]:
            stalls: collections.deque[tuple[float, float]] = collections.deque(maxlen=10)
            watch = asyncio.ensure_future(bench_guests.watch_loop(stalls))
            await asyncio.sleep(0.05)
            time.sleep(0.12)  # the loop blocked, as when the helper gets no CPU
            await asyncio.sleep(0.05)
            watch.cancel()
            return list(stalls)

        before = time.time()
        stalls = asyncio.run(run())
        # The blocked 0.12 s, whatever else the machine's load added.
        blocked = [(ended, seconds) for ended, seconds in stalls if 0.1 <= seconds < 1.0]
        self.assertEqual(1, len(blocked), stalls)
        self.assertGreater(blocked[0][0], before)
