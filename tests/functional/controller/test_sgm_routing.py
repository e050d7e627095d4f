"""The controller routes broadcasts and answers status on a real RabbitMQ, Nova being the stub."""

from __future__ import annotations

import time

from tests.functional.controller.sgm_base import SgmTestCase, make_broadcast
from tests.functional.rabbit import TIMEOUT


class TestBroadcastRouting(SgmTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.a = self.stub.add_server(host='cmp-1')
        self.b = self.stub.add_server(host='cmp-2')
        self.c = self.stub.add_server(host='cmp-2')
        self.d = self.stub.add_server(host='cmp-3')
        self.other = self.stub.add_server(host='cmp-3')  # another group on a host of this one
        self.lonely = self.stub.add_server(host='cmp-1')  # in no group
        self.group = self.stub.add_group([self.a, self.b, self.c, self.d])
        self.stub.add_group([self.other])
        self.hosts = {name: self.start_host(name) for name in ('cmp-1', 'cmp-2', 'cmp-3')}
        self.start_controller()

    def test_one_cast_per_destination_host_never_to_the_sender(self) -> None:
        api = self.api()
        first = make_broadcast(self.a.uuid, 'cmp-1', b'first', ref_seq=1)
        second = make_broadcast(self.a.uuid, 'cmp-1', b'second', ref_seq=2)
        api.sgm_broadcast(None, [first, second])

        method, deliveries = self.hosts['cmp-2'].get()
        self.assertEqual('sgm_deliver', method)
        # Both broadcasts in one cast, in the order sent, for both local recipients.
        self.assertEqual([first['payload'], second['payload']], [d['payload'] for d in deliveries])
        for delivery, sent in zip(deliveries, (first, second), strict=True):
            self.assertEqual(self.a.uuid, delivery['sender'])
            self.assertEqual(sorted([self.b.uuid, self.c.uuid]), sorted(delivery['recipients']))
            self.assertEqual(sent['stamp'], delivery['stamp'])
        method, deliveries = self.hosts['cmp-3'].get()
        self.assertEqual(('sgm_deliver', [[self.d.uuid], [self.d.uuid]]),
                         (method, [d['recipients'] for d in deliveries]))
        # The sender's host has no other member: nothing goes there; nothing else anywhere.
        for recorder in self.hosts.values():
            self.assertTrue(recorder.nothing_more(0.3))

    def test_no_group_and_unavailable_are_nacked_to_the_sender_host(self) -> None:
        api = self.api()
        lonely = make_broadcast(self.lonely.uuid, 'cmp-1', ref_seq=7, session='sess-x')
        api.sgm_broadcast(None, [lonely])
        method, nacks = self.hosts['cmp-1'].get()
        self.assertEqual('sgm_nack', method)
        self.assertEqual([{'instance_uuid': self.lonely.uuid, 'session': 'sess-x', 'ref_seq': 7,
                           'reason': 'no_group', 'detail': nacks[0]['detail']}], nacks)

        # Nova too slow for [sgm] nova_timeout_s: unavailable, within that bound.
        self.conf.set_override('nova_timeout_s', 0.3, group='sgm')
        slow = self.stub.add_server(host='cmp-1', get_delay=3.0)
        started = time.monotonic()
        api.sgm_broadcast(None, [make_broadcast(slow.uuid, 'cmp-1', ref_seq=8)])
        method, nacks = self.hosts['cmp-1'].get()
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual(('sgm_nack', 'unavailable', 8), (method, nacks[0]['reason'], nacks[0]['ref_seq']))

    def test_status_lists_every_member_with_its_state(self) -> None:
        self.stub.change_server(self.b.uuid, vm_state='stopped', power_state='shutdown')
        answer = self.api().sgm_status(None, self.a.uuid.upper())  # any UUID spelling is accepted
        self.assertEqual(sorted([
            {'uuid': self.a.uuid, 'state': 'active', 'power_state': 'running'},
            {'uuid': self.b.uuid, 'state': 'stopped', 'power_state': 'shutdown'},
            {'uuid': self.c.uuid, 'state': 'active', 'power_state': 'running'},
            {'uuid': self.d.uuid, 'state': 'active', 'power_state': 'running'},
        ], key=lambda m: m['uuid']), sorted(answer['members'], key=lambda m: m['uuid']))
        self.assertEqual('no_group', self.api().sgm_status(None, self.lonely.uuid)['nack'])

    def test_group_too_large(self) -> None:
        big = [self.stub.add_server(host='cmp-%d' % (i % 3 + 1)) for i in range(33)]
        self.stub.add_group(big)
        answer = self.api(timeout=TIMEOUT).sgm_status(None, big[0].uuid)
        self.assertEqual('group_too_large', answer['nack'])

    def test_cached_routing_needs_no_nova(self) -> None:
        api = self.api()
        api.sgm_broadcast(None, [make_broadcast(self.a.uuid, 'cmp-1')])
        self.hosts['cmp-2'].get()
        asked = len(self.stub.requests)
        # Nova goes away: the cache (cache_ttl_s) still routes.
        self.stub.stop()
        api.sgm_broadcast(None, [make_broadcast(self.a.uuid, 'cmp-1', b'again', ref_seq=2)])
        self.assertEqual('sgm_deliver', self.hosts['cmp-2'].get()[0])
        self.assertEqual(asked, len(self.stub.requests))
