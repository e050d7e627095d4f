"""ControllerManager in process on the fake driver: servers, sinks and resync wired together."""

from __future__ import annotations

import time
from typing import Any

import oslo_messaging
import testtools

from ha_guest import rpc
from ha_guest.controller.manager import ControllerManager
from ha_guest.rpc import transport as rpc_transport
from ha_guest.sinks import base
from tests.messaging import ConfFixture, NotificationListenerFixture
from tests.unit.controller.test_registry import fault, item, report

TIMEOUT = 5.0


class PlayedCompute:
    """A compute agent's endpoint that answers request_state_report with a canned report."""

    target = oslo_messaging.Target(version=rpc.COMPUTE_API_VERSION)

    def __init__(self, api: rpc.ControllerAPI, state: dict[str, Any]) -> None:
        self.api = api
        self.state = state

    def request_state_report(self, ctxt: dict[str, Any]) -> None:
        self.api.report_state(None, self.state)


class TestManager(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(ConfFixture(host='ctl-1')).conf
        self.conf.set_override('fault_sinks', ['log', 'notifications'], group='controller')
        self.transport = rpc_transport.get_rpc_transport(self.conf)
        self.addCleanup(self.transport.cleanup)
        self.api = rpc.ControllerAPI(self.conf, self.transport)

    def start(self) -> ControllerManager:
        manager = ControllerManager(self.conf, self.transport, self.transport)
        manager.start()
        self.addCleanup(manager.stop)
        return manager

    def test_report_list_and_notify(self) -> None:
        listener = self.useFixture(NotificationListenerFixture(
            self.transport, self.conf.sink_notifications.topics)).collector
        self.start()
        self.assertEqual({'duplicate': False}, self.api.report_fault(None, fault()))
        self.assertEqual({'duplicate': True}, self.api.report_fault(None, fault()))
        self.assertEqual([dict(fault(), state='active')], self.api.list_faults(None))
        got = listener.get(TIMEOUT)
        self.assertEqual(base.EVENT_FAULT_RAISED, got['event_type'])
        self.assertEqual(base.event_payload(fault()), got['payload'])
        self.assertEqual('ha_guest.controller.ctl-1', got['publisher_id'])

    def test_resync_on_start(self) -> None:
        state = report('cmp-1', time.time(), item('i-9', 'inc-9', 'unhealthy'))
        server = rpc_transport.get_rpc_server(self.transport, rpc.compute_server_target(self.conf, 'cmp-1'),
                                              [PlayedCompute(self.api, state)])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)
        self.start()
        deadline = time.monotonic() + TIMEOUT
        while not self.api.list_faults(None) and time.monotonic() < deadline:
            time.sleep(0.05)
        (listed,) = self.api.list_faults(None)
        self.assertEqual(('i-9', 'inc-9', 'unhealthy', 'active'),
                         (listed['instance_uuid'], listed['incident_id'], listed['kind'], listed['state']))

    def test_stop_is_clean(self) -> None:
        manager = ControllerManager(self.conf, self.transport, self.transport)
        manager.start()
        manager.stop()
        manager.stop()  # twice is harmless
        self.assertFalse(manager.peer_worker.alive())


class TestManagerRecovery(testtools.TestCase):
    """With an action sink: the intent goes over the (fake) broker and comes back to this controller's sink."""

    def setUp(self) -> None:
        super().setUp()
        from ha_guest.testing.openstack_stub import OpenStackStub, configure_nova_api

        self.conf = self.useFixture(ConfFixture(host='ctl-1')).conf
        self.conf.set_override('fault_sinks', ['log', 'recovery'], group='controller')
        self.stub = OpenStackStub()
        self.stub.start()
        self.addCleanup(self.stub.stop)
        configure_nova_api(self.conf, self.stub)
        self.transport = rpc_transport.get_rpc_transport(self.conf)
        self.addCleanup(self.transport.cleanup)
        self.api = rpc.ControllerAPI(self.conf, self.transport)

    def test_intent_round_trip(self) -> None:
        manager = ControllerManager(self.conf, self.transport, self.transport)
        manager.start()
        self.addCleanup(manager.stop)
        self.assertIsNotNone(manager.intents)
        server = self.stub.add_server({'ha_guest:heartbeat': 'true', 'ha_guest:recovery': 'reboot'})
        self.assertEqual({'duplicate': False}, self.api.report_fault(None, fault(instance=server.uuid,
                                                                                at=time.time())))
        self.assertTrue(self.stub.wait_for(lambda: self.stub.actions(server.uuid), TIMEOUT))
        self.assertEqual(['reboot'], [a['action'] for a in self.stub.instance_actions(server.uuid)])
        deadline = time.monotonic() + TIMEOUT
        sink = manager.dispatcher.sinks['recovery']
        while not sink.counts and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.02)
        self.assertEqual({'acted': 1}, dict(sink.counts))  # type: ignore[attr-defined]

    def test_no_action_sink_no_intents(self) -> None:
        self.conf.set_override('fault_sinks', ['log'], group='controller')
        manager = ControllerManager(self.conf, self.transport, self.transport)
        self.assertIsNone(manager.intents)
        self.assertIsNone(manager.carrier)
