"""The SGM benchmark's guests read what a compute agent writes; its stamps, layout and figures are right."""

from __future__ import annotations

import base64
import itertools
import os
import tempfile
from typing import Any

import fixtures
import testtools

from ha_guest.protocol import GUEST, HOST, ChannelCodec, Envelope, Hello, HelloAck, sgm
from ha_guest.protocol.limits import MAX_BROADCAST_BYTES
from ha_guest.testing import bench_sgm_guests as guests_mod
from ha_guest.testing.bench_sgm_parts import Layout, cpu_ms_per_broadcast, load_figures, logged_drops
from tests.unit.testing.test_bench import RecordingTransport

SENDER = '7d2a6f0e-1b7d-4e52-9a51-0c3f5e7d9a01'
RECIPIENT = '0b6c1f35-2a44-4c1e-8d2b-6a3f4e5d6c7b'


class TestStamp(testtools.TestCase):

    def test_round_trip_at_full_size(self) -> None:
        payload = guests_mod.stamp_payload(SENDER, 42, 1_700_000_000_123_456_789)
        self.assertEqual(MAX_BROADCAST_BYTES, len(payload))
        self.assertEqual((SENDER, 42, 1_700_000_000_123_456_789), guests_mod.read_stamp(payload))

    def test_base64_prefix_decodes_the_stamp_alone(self) -> None:
        payload = guests_mod.stamp_payload(SENDER, 7, 123)
        prefix = base64.b64encode(payload)[:guests_mod.STAMP_BYTES // 3 * 4]
        self.assertEqual((SENDER, 7, 123), guests_mod.read_stamp(base64.b64decode(prefix)))

    def test_not_a_stamp(self) -> None:
        self.assertRaises(ValueError, guests_mod.read_stamp, b'x' * guests_mod.STAMP_BYTES)


class TestSgmGuest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.guests = guests_mod.Guests()
        self.connection = guests_mod.GuestConnection(self.guests, RECIPIENT)
        self.transport = RecordingTransport()
        self.connection.connection_made(self.transport)
        self.host = ChannelCodec(HOST)
        self.host.start_session()

    def feed(self, *messages: Any, split: int = 0) -> list[Any]:
        """Write host frames to the guest (in chunks of ``split`` bytes if given); return its answers."""
        data = b''.join(self.host.encode(message) for message in messages)
        chunks = [data[i:i + split] for i in range(0, len(data), split)] if split else [data]
        self.transport.written = b''
        for chunk in chunks:
            self.connection.data_received(chunk)
        return [item.message for item in self.host.feed(self.transport.written) if isinstance(item, Envelope)]

    def test_hello_gets_hello_ack_and_no_init(self) -> None:
        answers = self.feed(Hello(1, 1))
        self.assertEqual(1, len(answers))
        self.assertIsInstance(answers[0], HelloAck)
        self.assertTrue(self.connection.acked)

    def test_deliveries_counted_through_the_shortcut_even_in_pieces(self) -> None:
        self.feed(Hello(1, 1))
        payload = guests_mod.stamp_payload(SENDER, 3, 99)
        self.feed(sgm.BroadcastDeliver(SENDER, payload), sgm.BroadcastDeliver(SENDER, payload), split=1000)
        self.assertEqual(2, self.guests.receipts[(SENDER, 3)][0])
        self.assertEqual(0, self.guests.counters['misattributed'])

    def test_a_sender_the_host_did_not_stamp_is_counted(self) -> None:
        self.feed(Hello(1, 1))
        self.feed(sgm.BroadcastDeliver(RECIPIENT, guests_mod.stamp_payload(SENDER, 1, 1)))
        self.assertEqual(1, self.guests.counters['misattributed'])
        self.assertEqual(1, self.guests.counters['self_deliveries'])

    def test_notification_nack_and_broadcast(self) -> None:
        self.feed(Hello(1, 1))
        self.feed(sgm.Notification(SENDER, 'instance.power_off.end', 'stopped', 'shutdown'),
                  sgm.Nack(5, sgm.NACK_RATE_LIMITED, ''))
        self.assertEqual(1, len(self.guests.notes[(SENDER, 'instance.power_off.end')]))
        self.assertEqual({'rate_limited': 1}, self.guests.nacks)
        self.transport.written = b''
        seq, t_ns = self.guests.send_broadcast(RECIPIENT) or (0, 0)
        sent = [item.message for item in self.host.feed(self.transport.written) if isinstance(item, Envelope)]
        self.assertEqual([sgm.Broadcast(guests_mod.stamp_payload(RECIPIENT, seq, t_ns))], sent)

    def test_guest_codec_would_read_the_same_frames(self) -> None:
        # The shortcut must not accept what the protocol would not: the frames are ordinary guest input.
        codec = ChannelCodec(GUEST)
        frames = self.host.encode(Hello(1, 1)) + self.host.encode(
            sgm.BroadcastDeliver(SENDER, guests_mod.stamp_payload(SENDER, 1, 1)))
        self.assertTrue(all(isinstance(item, Envelope) for item in codec.feed(frames)))


class TestFigures(testtools.TestCase):

    def test_layout_spreads_groups_over_hosts(self) -> None:
        counter = itertools.count()
        layout = Layout(2, 4, 16, tempfile.gettempdir(), lambda host: 'server-%d' % next(counter),
                        lambda members: 'group-%d' % next(counter))
        self.assertEqual(32, len(layout.guests))
        self.assertEqual(8, len(layout.on_host('bench-compute-1')))
        peers = layout.peers_by_host(layout.guests[0])
        self.assertEqual({'bench-compute-1': 3, 'bench-compute-2': 4, 'bench-compute-3': 4, 'bench-compute-4': 4},
                         peers)
        self.assertEqual(os.path.join(tempfile.gettempdir(), 'bench-compute-2'), layout.folder('bench-compute-2'))

    def test_load_figures(self) -> None:
        start = 1_000_000_000_000
        reports: list[dict[str, Any]] = [
            {'sent': {'a': [[1, start + 1_000_000], [2, start + 1_500_000_000]], 'b': [[1, start - 1]]},
             'receipts': [['a', 1, 2, start + 6_000_000], ['a', 2, 1, start + 1_600_000_000]]},
            {'sent': {}, 'receipts': [['a', 1, 1, start + 4_000_000], ['a', 2, 3, start + 1_700_000_000]]},
        ]
        figures = load_figures(reports, start, 2.0, 3)
        # b's broadcast was before the window; a/1 got 3 receipts, a/2 got 4 (one too many, still complete).
        self.assertEqual(2, figures['broadcasts_offered'])
        self.assertEqual(2, figures['broadcasts_delivered'])
        self.assertEqual(0, figures['broadcasts_lost'])
        self.assertEqual(1, figures['over_delivered'])
        self.assertEqual(5.0, figures['load_broadcast_p50_ms'])
        self.assertEqual([1, 1], figures['delivered_by_second'])
        reports[1]['receipts'] = []
        self.assertEqual(2, load_figures(reports, start, 2.0, 3)['broadcasts_lost'])

    def test_logged_drops_and_cpu(self) -> None:
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'compute.log')
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write('x WARNING server group messaging: broadcast dropped (reordered), instance a\n'
                         'x WARNING server group messaging: broadcast dropped (reordered), instance b '
                         '(41 similar lines suppressed)\n'
                         'x INFO server group messaging: broadcast dropped (not_connected), instance c\n')
        self.assertEqual({'reordered': 43, 'not_connected': 1}, logged_drops([path, path + '.missing']))
        self.assertEqual({'controller': 0.5}, cpu_ms_per_broadcast({'controller': 50.0}, 1000.0))

