"""Nova's versioned notifications -> SGM updates (payloads from the Nova-free builder; tox -e nova checks it)."""

from __future__ import annotations

import time
import uuid

import testtools

from ha_guest.controller import nova_notifications as nn
from ha_guest.rpc.errors import InvalidPayload
from ha_guest.testing import nova_notifications as build


class TestParse(testtools.TestCase):

    def test_forwarded_instance_events(self) -> None:
        instance = build.NovaInstance(uuid=str(uuid.uuid4()).upper(), host='cmp-9', vm_state='stopped',
                                      power_state='shutdown')
        for event in sorted(nn.INSTANCE_EVENTS - {nn.DELETE_END}):
            update = nn.parse(event, build.instance_payload(instance, event), 1234.5)
            self.assertEqual({'kind': 'member', 'event': event, 'member': instance.uuid.lower(), 'state': 'stopped',
                              'power_state': 'shutdown', 'host': 'cmp-9', 'host_given': True, 'at': 1234.5}, update)

    def test_delete_is_state_deleted_without_host(self) -> None:
        instance = build.NovaInstance(vm_state='deleted', power_state='pending')
        update = nn.parse('instance.delete.end', build.instance_payload(instance, 'instance.delete.end'))
        self.assertEqual(('deleted', False), (update['state'], update['host_given']))

    def test_offloaded_instance_has_no_host(self) -> None:
        instance = build.NovaInstance(host=None, vm_state='shelved_offloaded', power_state='shutdown')
        event = 'instance.shelve_offload.end'
        update = nn.parse(event, build.instance_payload(instance, event))
        self.assertEqual((None, True), (update['host'], update['host_given']))

    def test_integer_power_state_is_named(self) -> None:
        payload = build.instance_payload(build.NovaInstance(), 'instance.power_on.end')
        payload['nova_object.data']['power_state'] = 4
        self.assertEqual('shutdown', nn.parse('instance.power_on.end', payload)['power_state'])

    def test_server_group_events(self) -> None:
        group, members = str(uuid.uuid4()), [str(uuid.uuid4()), str(uuid.uuid4())]
        self.assertEqual({'kind': 'add_member', 'event': 'server_group.add_member', 'group': group, 'members': members,
                          'at': 7.0},
                         nn.parse('server_group.add_member', build.server_group_payload(group, members), 7))
        self.assertEqual({'kind': 'group_delete', 'event': 'server_group.delete', 'group': group, 'at': 8.0},
                         nn.parse('server_group.delete', build.server_group_payload(group, []), 8))

    def test_event_time_from_oslo_messaging_metadata(self) -> None:
        # oslo.messaging stamps str(utcnow()); naive, UTC.
        self.assertEqual(1796529600.25, nn.event_time({'timestamp': '2026-12-06 04:00:00.250000',
                                                       'message_id': 'x'}))
        before = time.time()
        self.assertGreaterEqual(nn.event_time({'timestamp': 'yesterday'}), before)  # unreadable: now
        self.assertGreaterEqual(nn.event_time(None), before)

    def test_other_events_are_not_forwarded(self) -> None:
        payload = build.instance_payload(build.NovaInstance(), 'instance.update')
        for event in ('instance.update', 'instance.power_off.start', 'instance.reboot.error', 'server_group.create',
                      'instance.live_migration_post.end', 'compute.exception'):
            self.assertIsNone(nn.parse(event, payload))

    def test_malformed(self) -> None:
        self.assertRaises(InvalidPayload, nn.parse, 'instance.power_on.end', {'uuid': 'x'})
        payload = build.instance_payload(build.NovaInstance(), 'instance.power_on.end')
        payload['nova_object.data']['uuid'] = 'not-a-uuid'
        self.assertRaises(InvalidPayload, nn.parse, 'instance.power_on.end', payload)

    def test_check_update_round_trip_and_refusals(self) -> None:
        instance = build.NovaInstance()
        update = nn.parse('instance.reboot.end', build.instance_payload(instance, 'instance.reboot.end'))
        self.assertEqual(update, nn.check_update(update))
        for bad in ({'kind': 'member', 'event': 'instance.update'}, {'kind': 'x', 'event': 'instance.reboot.end'},
                    dict(update, member='nope'), dict(update, host=''), 'text'):
            self.assertRaises(InvalidPayload, nn.check_update, bad)


class TestEndpoint(testtools.TestCase):

    def test_filter_and_dispatch(self) -> None:
        updates: list[dict] = []
        endpoint = nn.NovaNotificationEndpoint(updates.append)
        def match(event_type: str) -> bool:
            return bool(endpoint.filter_rule.match({}, 'nova-compute:cmp-1', event_type, {}, {}))

        self.assertTrue(match('instance.power_off.end'))
        self.assertFalse(match('instance.power_off.endx'))
        self.assertFalse(match('instance.update'))
        endpoint.info({}, 'nova-compute:cmp-1', 'instance.power_off.end', {'bad': 1}, {})
        self.assertEqual((0, 1), (len(updates), endpoint.malformed))
        payload = build.instance_payload(build.NovaInstance(), 'instance.power_off.end')
        endpoint.info({}, 'nova-compute:cmp-1', 'instance.power_off.end', payload, {})
        self.assertEqual('instance.power_off.end', updates[0]['event'])
