"""Controllers turn Nova's own notifications into peer notifications, once, and share what they learn.

Nova's events are emitted by Nova's code (tests/sgm/nova_emit.py) on the real
broker; two in-process controllers consume them in one listener pool; fake
compute agents record the casts. The stub Nova is never told about the
changes: what the controllers know afterwards came from the notifications.
"""

from __future__ import annotations

import time
from typing import Any

import oslo_messaging
from oslo_config import cfg

from ha_guest.testing import messaging, wait_for
from tests.functional.controller.sgm_base import SgmTestCase, set_sgm_option
from tests.functional.rabbit import TIMEOUT
from tests.messaging import unique
from tests.sgm import nova_emit

#: How long a test waits to be sure that something does not arrive.
QUIET_S = 0.5


def nova_emit_auto_delete() -> bool:
    """Return the amqp_auto_delete of the Nova configuration nova_emit sends with."""
    import nova.conf

    try:
        return bool(nova.conf.CONF.oslo_messaging_rabbit.amqp_auto_delete)
    except cfg.NoSuchOptError:  # pragma: no cover - the rabbit driver registers it when nova_emit connects
        return False


class NovaSgmTestCase(SgmTestCase):
    """Controllers consume the topic nova_emit publishes on, on exchange "nova" declared as Nova does."""

    def setUp(self) -> None:
        nova_emit._init()  # Nova's configuration first: the listener declares Nova's exchange as it does
        super().setUp()
        set_sgm_option(self.conf, 'notification_topics', [nova_emit.TOPIC])
        set_sgm_option(self.conf, 'notification_exchange', 'nova')
        set_sgm_option(self.conf, 'notification_pool', unique('ha_guest-sgm'))
        # The listener declares Nova's exchange as Nova's notifier does (a broker refuses to see one exchange
        # declared two ways): by default not auto-delete, unlike this project's test transports.
        own: cfg.ConfigOpts = messaging.make_conf(messaging.transport_url(), 'nova-listener', {})
        own.set_override('amqp_auto_delete', nova_emit_auto_delete(), group='oslo_messaging_rabbit')
        self.nova_transport = oslo_messaging.get_notification_transport(own)
        self.addCleanup(self.nova_transport.cleanup)
        self.a = self.stub.add_server(host='cmp-1')
        self.b = self.stub.add_server(host='cmp-2')
        self.c = self.stub.add_server(host='cmp-2')
        self.group = self.stub.add_group([self.a, self.b, self.c])
        self.hosts = {name: self.start_host(name) for name in ('cmp-1', 'cmp-2')}

    def start_sgm_controller(self) -> Any:
        from ha_guest.controller.manager import ControllerManager

        manager = ControllerManager(self.conf, self.rabbit.transport, self.nova_transport)
        manager.start()
        self.addCleanup(manager.stop)
        return manager

    def notifications(self, host: str) -> list[dict[str, Any]]:
        """Return every notification item cast to ``host`` so far (draining its queue)."""
        items = []
        recorder = self.hosts[host]
        while not recorder.received.empty():
            method, batch = recorder.received.get()
            self.assertEqual('sgm_notify', method)
            items.extend(batch)
        return items


class TestTwoControllers(NovaSgmTestCase):

    def test_each_event_reaches_the_peers_once_and_both_controllers_learn_it(self) -> None:
        controllers = [self.start_sgm_controller(), self.start_sgm_controller()]
        # Controller 0 has routed for the group (cache filled from Nova); controller 1 knows nothing yet.
        self.assertIn('members', controllers[0].router.status(self.a.uuid))

        nova_emit.emit('instance.power_off.end', self.b.uuid, 'cmp-2', vm_state='stopped', power_state='shutdown')
        nova_emit.emit('instance.pause.end', self.c.uuid, 'cmp-2', vm_state='paused', power_state='paused')

        def arrived() -> bool:
            got = [r.casts for r in self.hosts.values()]
            return sum(len(batch) for casts in got for _, batch in casts) >= 4

        wait_for(arrived, TIMEOUT, message='the notifications of both events')
        time.sleep(QUIET_S)  # time for duplicates to show: each event must reach the peers once, not per controller
        on_1, on_2 = self.notifications('cmp-1'), self.notifications('cmp-2')
        self.assertEqual(
            sorted([([self.a.uuid], self.b.uuid, 'instance.power_off.end', 'stopped', 'shutdown'),
                    ([self.a.uuid], self.c.uuid, 'instance.pause.end', 'paused', 'paused')]),
            sorted((n['recipients'], n['member'], n['event'], n['state'], n['power_state']) for n in on_1))
        # A member hears about its peer on the same host, never about itself.
        self.assertEqual(
            sorted([([self.c.uuid], self.b.uuid), ([self.b.uuid], self.c.uuid)]),
            sorted((n['recipients'], n['member']) for n in on_2))

        expected = {self.a.uuid: ('active', 'running'), self.b.uuid: ('stopped', 'shutdown'),
                    self.c.uuid: ('paused', 'paused')}

        def both_know() -> bool:
            answers = [controller.router.status(self.a.uuid) for controller in controllers]
            return all({m['uuid']: (m['state'], m['power_state']) for m in answer.get('members', [])} == expected
                       for answer in answers)

        wait_for(both_know, TIMEOUT, message='both controllers to know the new states')
        self.assertEqual('active', self.stub.servers[self.b.uuid].vm_state)  # Nova's API was never told

    def test_delete_add_member_and_group_delete(self) -> None:
        controllers = [self.start_sgm_controller(), self.start_sgm_controller()]
        for controller in controllers:
            self.assertIn('members', controller.router.status(self.a.uuid))

        self.stub.delete_server(self.c.uuid)  # Nova deletes the instance (and its membership), then tells
        nova_emit.emit('instance.delete.end', self.c.uuid, 'cmp-2', vm_state='deleted', power_state='pending')
        method, items = self.hosts['cmp-2'].get()
        self.assertEqual(('sgm_notify', [self.b.uuid], self.c.uuid, 'deleted'),
                         (method, items[0]['recipients'], items[0]['member'], items[0]['state']))
        method, items = self.hosts['cmp-1'].get()
        self.assertEqual(('sgm_notify', [self.a.uuid], self.c.uuid), (method, items[0]['recipients'],
                                                                      items[0]['member']))

        def gone_everywhere() -> bool:
            return all(sorted(m['uuid'] for m in c.router.status(self.a.uuid)['members'])
                       == sorted([self.a.uuid, self.b.uuid]) for c in controllers)

        wait_for(gone_everywhere, TIMEOUT, message='the deleted member to leave the group on both controllers')

        # A new member: the existing members hear of it (state as known: building); it hears nothing.
        new = self.stub.add_server(host='cmp-1')
        nova_emit.emit('server_group.add_member', new.uuid, 'api-1', group=self.group.uuid,
                       members=[self.a.uuid, self.b.uuid, new.uuid])
        method, items = self.hosts['cmp-1'].get()
        self.assertEqual(('sgm_notify', [self.a.uuid], new.uuid, 'server_group.add_member', 'building'),
                         (method, items[0]['recipients'], items[0]['member'], items[0]['event'], items[0]['state']))
        self.assertEqual([self.b.uuid], self.hosts['cmp-2'].get()[1][0]['recipients'])

        self.stub.delete_group(self.group.uuid)  # Nova deletes the group, then tells
        nova_emit.emit('server_group.delete', self.a.uuid, 'api-1', group=self.group.uuid, members=[])
        wait_for(lambda: all(c.router.status(self.b.uuid).get('nack') == 'no_group' for c in controllers), TIMEOUT,
                 message='both controllers to forget the group')
        for recorder in self.hosts.values():
            self.assertTrue(recorder.nothing_more(0.5))  # a deleted group tells nobody

    def test_events_not_forwarded(self) -> None:
        self.start_sgm_controller()
        nova_emit.emit('instance.power_off.start', self.b.uuid, 'cmp-2', vm_state='active', power_state='running')
        nova_emit.emit('instance.shutdown.end', self.b.uuid, 'cmp-2', vm_state='active', power_state='running')
        nova_emit.emit('instance.power_on.end', self.b.uuid, 'cmp-2')
        method, items = self.hosts['cmp-1'].get()
        self.assertEqual(('sgm_notify', 'instance.power_on.end'), (method, items[0]['event']))
