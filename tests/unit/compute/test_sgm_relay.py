"""The compute agent's SGM relay on a real event loop, with recording channels and a fake sender."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Callable, Dict, List, Optional

import testtools

from ha_guest.compute import fastpath, sgm_relay
from ha_guest.compute.sgm_relay import SgmRelay
from ha_guest.protocol import envelope, limits, sgm
from ha_guest.protocol.envelope import Envelope
from ha_guest.protocol.messages import Message

A = '6b3c1f0e-2a4d-4c8e-9f17-5d2b8a0c4e91'
B = 'e2f94a07-8b1c-4d3e-a65f-0c7d9b2e1f38'
C = '0c7d9b2e-1f38-4d3e-a65f-e2f94a078b1c'


class FakeChannel:
    """Records what the relay writes to one guest."""

    def __init__(self, uuid: str, sgm_enabled: bool = True, session: Optional[str] = 's1') -> None:
        self.instance_uuid = uuid
        self.hello_acked = session is not None
        self._session = session
        self._sgm = sgm_enabled
        self.sent: List[Message] = []
        self.backlogged = False

    @property
    def session(self) -> Optional[str]:
        return self._session

    @property
    def sgm_enabled(self) -> bool:
        return self._sgm

    def send(self, message: Message) -> None:
        self.sent.append(message)

    def send_deliver(self, data: bytes) -> bool:
        # Decoded back through the real codec: the relay's pre-encoded frame must be a valid one.
        frame = fastpath.broadcast_deliver_frame(1, 1, self._session or 's', data)
        self.sent.append(envelope.decode(frame.rstrip(b'\n')).message)
        return not self.backlogged


class FakeSender:
    """Stands in for SgmSender: keeps broadcasts, answers status with what the test says."""

    def __init__(self) -> None:
        self.broadcasts: List[Dict[str, Any]] = []
        self.full = False
        self.answer: Dict[str, Any] = {'members': []}
        self.status_calls: List[str] = []
        self.hold: List[Callable[[], None]] = []
        self.counters: Dict[str, int] = {}

    def broadcast(self, item: Dict[str, Any]) -> bool:
        if self.full:
            return False
        self.broadcasts.append(item)
        return True

    def status(self, uuid: str, on_answer: Callable[[Dict[str, Any]], None]) -> bool:
        self.status_calls.append(uuid)
        self.hold.append(lambda: on_answer(self.answer))
        return True

    def pending(self) -> int:
        return len(self.broadcasts)


class RelayTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.loop = asyncio.new_event_loop()
        self.addCleanup(self.loop.close)
        self.channels: Dict[str, FakeChannel] = {}
        self.sender = FakeSender()
        self.clock = [1000]
        self.relay = SgmRelay(self.loop, 'cmp-1', self.sender, self.channels.get,  # type: ignore[arg-type]
                              clock_ns=lambda: self.clock[0])

    def add(self, uuid: str, **kwargs: Any) -> FakeChannel:
        channel = self.channels[uuid] = FakeChannel(uuid, **kwargs)
        return channel

    def request(self, channel: FakeChannel, message: Message, seq: int = 7) -> None:
        self.relay.on_request(channel, Envelope(message, seq, channel.session), message)  # type: ignore[arg-type]

    def answer_status(self) -> None:
        for release in self.sender.hold:
            release()
        self.sender.hold.clear()
        self.loop.run_until_complete(asyncio.sleep(0.01))

    def delivery(self, sender: str, recipients: List[str], stamp: int, payload: bytes = b'hi') -> Dict[str, Any]:
        return {'sender': sender, 'recipients': recipients, 'payload': base64.b64encode(payload).decode(),
                'stamp': stamp, 'sent_at': 1.0}


class TestGuestRequests(RelayTest):

    def test_broadcast_is_stamped_from_the_channel(self) -> None:
        channel = self.add(A)
        self.request(channel, sgm.Broadcast(b'takeover'), seq=9)
        self.request(channel, sgm.Broadcast(b'again'), seq=10)
        first, second = self.sender.broadcasts
        self.assertEqual({'sender': A, 'host': 'cmp-1', 'session': 's1', 'ref_seq': 9,
                          'payload': base64.b64encode(b'takeover').decode(), 'stamp': 1000},
                         {k: v for k, v in first.items() if k != 'sent_at'})
        self.assertEqual(1001, second['stamp'])  # the clock stood still: still increasing
        self.assertEqual([], channel.sent)  # an accepted broadcast is not acknowledged

    def test_not_enabled(self) -> None:
        channel = self.add(A, sgm_enabled=False)
        self.request(channel, sgm.Broadcast(b'x'), seq=3)
        self.request(channel, sgm.StatusRequest(), seq=4)
        self.assertEqual([(3, sgm.NACK_NOT_ENABLED), (4, sgm.NACK_NOT_ENABLED)],
                         [(m.ref_seq, m.reason) for m in channel.sent])  # type: ignore[attr-defined]
        self.assertEqual([], self.sender.broadcasts)
        self.assertEqual(1, self.relay.drops[sgm_relay.DROP_NOT_ENABLED])

    def test_rate_limit_counts_broadcasts_and_status_together(self) -> None:
        channel = self.add(A)
        other = self.add(B)
        for seq in range(limits.BROADCAST_BURST):
            self.request(channel, sgm.StatusRequest() if seq < 2 else sgm.Broadcast(b'x'), seq=seq)
        self.assertEqual(2, len(self.sender.status_calls))
        self.request(channel, sgm.Broadcast(b'x'), seq=99)
        self.assertEqual([sgm.Nack(99, sgm.NACK_RATE_LIMITED, '')], [m for m in channel.sent if
                                                                    isinstance(m, sgm.Nack)])
        self.request(other, sgm.Broadcast(b'y'), seq=1)  # another guest's bucket is its own
        self.assertEqual(B, self.sender.broadcasts[-1]['sender'])

    def test_full_queue_is_unavailable(self) -> None:
        channel = self.add(A)
        self.sender.full = True
        self.request(channel, sgm.Broadcast(b'x'), seq=5)
        self.assertEqual(sgm.NACK_UNAVAILABLE, channel.sent[0].reason)  # type: ignore[attr-defined]
        self.assertEqual(1, self.relay.drops[sgm_relay.DROP_UNAVAILABLE])

    def test_status_reply_marks_self(self) -> None:
        channel = self.add(A)
        self.sender.answer = {'members': [{'uuid': A, 'state': 'active', 'power_state': 'running'},
                                          {'uuid': B, 'state': 'stopped', 'power_state': 'shutdown'}]}
        self.request(channel, sgm.StatusRequest(), seq=12)
        self.answer_status()
        reply = channel.sent[0]
        assert isinstance(reply, sgm.StatusReply)
        self.assertEqual(12, reply.ref_seq)
        self.assertEqual([(A, True), (B, False)], [(m.uuid, m.is_self) for m in reply.members])

    def test_status_nacks(self) -> None:
        channel = self.add(A)
        self.sender.answer = {'nack': 'no_group', 'detail': 'not in a group'}
        self.request(channel, sgm.StatusRequest(), seq=1)
        self.answer_status()
        too_many = [{'uuid': '%08d-0000-4000-8000-000000000000' % i, 'state': 'active', 'power_state': ''}
                    for i in range(limits.MAX_GROUP_MEMBERS)]
        self.sender.answer = {'members': [{'uuid': A, 'state': 'active', 'power_state': ''}] + too_many}
        self.request(channel, sgm.StatusRequest(), seq=2)
        self.answer_status()
        self.sender.answer = {'members': [{'uuid': B, 'state': 'active', 'power_state': ''}]}
        self.request(channel, sgm.StatusRequest(), seq=3)
        self.answer_status()
        self.assertEqual([(1, 'no_group'), (2, sgm.NACK_GROUP_TOO_LARGE), (3, sgm.NACK_UNAVAILABLE)],
                         [(m.ref_seq, m.reason) for m in channel.sent])  # type: ignore[attr-defined]

    def test_status_answer_for_an_old_session_is_dropped(self) -> None:
        channel = self.add(A)
        self.sender.answer = {'members': [{'uuid': A, 'state': 'active', 'power_state': ''}]}
        self.request(channel, sgm.StatusRequest(), seq=1)
        channel._session = 's2'  # the guest reconnected meanwhile
        self.answer_status()
        self.assertEqual([], channel.sent)

    def test_pending_status_requests_are_bounded(self) -> None:
        channel = self.add(A)
        for seq in range(sgm_relay.MAX_PENDING_STATUS + 1):
            self.request(channel, sgm.StatusRequest(), seq=seq)
        self.assertEqual(sgm_relay.MAX_PENDING_STATUS, len(self.sender.status_calls))
        self.assertEqual(sgm.NACK_RATE_LIMITED, channel.sent[0].reason)  # type: ignore[attr-defined]


class TestDeliveries(RelayTest):

    def test_delivered_to_local_sgm_recipients_only(self) -> None:
        sender, peer, no_sgm, offline = self.add(A), self.add(B), self.add(C, sgm_enabled=False), None
        del offline
        gone = '11111111-2222-4333-8444-555555555555'
        self.relay.deliver([self.delivery(A, [A, B, C, gone], 5, b'takeover')])
        self.assertEqual([sgm.BroadcastDeliver(A, b'takeover')], peer.sent)
        self.assertEqual([], sender.sent)
        self.assertEqual([], no_sgm.sent)
        self.assertEqual((1, 1, 1), (self.relay.drops[sgm_relay.DROP_SELF],
                                     self.relay.drops[sgm_relay.DROP_RECIPIENT_NOT_ENABLED],
                                     self.relay.drops[sgm_relay.DROP_NOT_HERE]))

    def test_overtaken_broadcast_is_dropped(self) -> None:
        peer = self.add(B)
        self.relay.deliver([self.delivery(A, [B], 10, b'new')])
        self.relay.deliver([self.delivery(A, [B], 9, b'old'), self.delivery(C, [B], 1, b'other sender')])
        self.assertEqual([b'new', b'other sender'], [m.payload for m in peer.sent])  # type: ignore[attr-defined]
        self.assertEqual(1, self.relay.drops[sgm_relay.DROP_REORDERED])

    def test_a_guest_that_does_not_read_loses_deliveries_not_its_channel(self) -> None:
        peer = self.add(B)
        peer.backlogged = True
        self.relay.deliver([self.delivery(A, [B], 1)])
        self.assertEqual(1, self.relay.drops[sgm_relay.DROP_BACKLOG])
        self.assertEqual(0, self.relay.counters['deliveries'])

    def test_invalid_payload_is_dropped(self) -> None:
        peer = self.add(B)
        self.relay.deliver([dict(self.delivery(A, [B], 1), payload='not base64!'),
                            self.delivery(A, [B], 2, b'x' * (limits.MAX_BROADCAST_BYTES + 1))])
        self.assertEqual([], peer.sent)
        self.assertEqual(2, self.relay.drops[sgm_relay.DROP_INVALID])

    def test_no_session_no_delivery(self) -> None:
        peer = self.add(B, session=None)
        self.relay.deliver([self.delivery(A, [B], 1)])
        self.assertEqual([], peer.sent)
        self.assertEqual(1, self.relay.drops[sgm_relay.DROP_NOT_CONNECTED])

    def test_notification_goes_to_peers_not_the_member(self) -> None:
        member, peer = self.add(A), self.add(B)
        self.relay.notify([{'recipients': [A, B], 'member': A, 'event': 'instance.power_off.end',
                            'state': 'stopped', 'power_state': 'shutdown'}])
        self.assertEqual([sgm.Notification(A, 'instance.power_off.end', 'stopped', 'shutdown')], peer.sent)
        self.assertEqual([], member.sent)

    def test_bad_notification_tokens_are_refused(self) -> None:
        peer = self.add(B)
        self.relay.notify([{'recipients': [B], 'member': A, 'event': 'x y\n', 'state': 'stopped',
                            'power_state': ''}])
        self.assertEqual([], peer.sent)

    def test_nack_reaches_the_same_session_only(self) -> None:
        channel = self.add(A)
        self.relay.nack([{'instance_uuid': A, 'session': 's1', 'ref_seq': 4, 'reason': 'no_group', 'detail': 'd'},
                         {'instance_uuid': A, 'session': 'old', 'ref_seq': 5, 'reason': 'no_group', 'detail': ''}])
        self.assertEqual([sgm.Nack(4, 'no_group', 'd')], channel.sent)
        self.assertEqual(2, self.relay.drops[sgm_relay.DROP_NO_GROUP])

    def test_sender_failure_nacks_unavailable(self) -> None:
        channel = self.add(A)
        self.request(channel, sgm.Broadcast(b'x'), seq=8)
        self.relay.sender_failed(self.sender.broadcasts, 'unavailable')
        self.assertEqual([(8, sgm.NACK_UNAVAILABLE)], [(m.ref_seq, m.reason) for m in channel.sent])  # type: ignore

