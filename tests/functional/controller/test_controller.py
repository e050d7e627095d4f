"""Real ha-guest-controller processes on a real RabbitMQ: reports, sinks, peers, restart."""

from __future__ import annotations

import queue
import signal
import time
import uuid
from typing import Any

import fixtures
import oslo_messaging
import testtools

from ha_guest import rpc
from ha_guest.rpc import transport as rpc_transport
from ha_guest.sinks import base
from ha_guest.testing import wait_for
from tests.functional.rabbit import TIMEOUT, ControllerProcess, RabbitFixture
from tests.messaging import NotificationCollector, NotificationListenerFixture


def make_fault(host: str = 'cmp-1', kind: str = 'missed') -> dict[str, Any]:
    return {'instance_uuid': str(uuid.uuid4()), 'host': host, 'incident_id': uuid.uuid4().hex, 'kind': kind,
            'reason': 'no answer to 1 challenge(s) of 100 ms', 'detected_at': time.time(), 'interval_ms': 100,
            'misses': 1}


def recovery_of(fault: dict[str, Any]) -> dict[str, Any]:
    return {'instance_uuid': fault['instance_uuid'], 'host': fault['host'], 'incident_id': fault['incident_id'],
            'recovered_at': time.time()}


class ControllerTestCase(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.rabbit = self.useFixture(RabbitFixture())
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def start_controller(self, host: str, **groups: dict[str, Any]) -> ControllerProcess:
        return self.useFixture(ControllerProcess(self.rabbit, host, self.tmp, **groups))

    def listen(self, topics: list[str]) -> NotificationCollector:
        fixture = NotificationListenerFixture(self.rabbit.notification_transport, topics)
        return self.useFixture(fixture).collector

    def assertNothingMore(self, collector: NotificationCollector, wait: float = 0.3) -> None:
        self.assertRaises(queue.Empty, collector.received.get, timeout=wait)


class TestController(ControllerTestCase):

    def test_fault_lifecycle_and_sinks(self) -> None:
        notifications = self.listen(self.rabbit.conf.sink_notifications.topics)
        vitrage = self.listen(self.rabbit.conf.sink_vitrage.topics)
        controller = self.start_controller('ctl-a')
        api = self.rabbit.controller_api()
        fault = make_fault()

        self.assertEqual({'duplicate': False}, api.report_fault(None, fault))
        self.assertEqual([dict(fault, state='active')], api.list_faults(None))
        self.assertEqual([dict(fault, state='active')], api.list_faults(None, fault['instance_uuid']))
        self.assertEqual([], api.list_faults(None, 'another-instance'))
        self.assertEqual({'duplicate': True}, api.report_fault(None, dict(fault, detected_at=time.time())))

        raised = {
            'publisher_id': 'ha_guest.controller.ctl-a', 'event_type': 'ha_guest.heartbeat.fault.raised',
            'payload': dict(fault, state='active', cleared_at=None, cleared_by=None),
        }
        self.assertEqual(raised, notifications.get(TIMEOUT))
        self.assertEqual(raised, vitrage.get(TIMEOUT))

        recovery = recovery_of(fault)
        api.report_recovery(None, recovery)
        self.assertEqual([], api.list_faults(None))
        cleared = {
            'publisher_id': 'ha_guest.controller.ctl-a', 'event_type': 'ha_guest.heartbeat.fault.cleared',
            'payload': dict(fault, state='cleared', cleared_at=recovery['recovered_at'], cleared_by='recovered'),
        }
        # The duplicate raised nothing: the next event on each topic is the clear.
        self.assertEqual(cleared, notifications.get(TIMEOUT))
        self.assertEqual(cleared, vitrage.get(TIMEOUT))

        self.assertEqual(0, controller.stop(signal.SIGTERM))
        log = controller.log()
        self.assertIn('Heartbeat fault raised: instance %s' % fault['instance_uuid'], log)
        self.assertIn('Heartbeat fault cleared (recovered): instance %s' % fault['instance_uuid'], log)
        self.assertNothingMore(notifications)

    def test_exit_clears_and_bad_reports_fail(self) -> None:
        notifications = self.listen(self.rabbit.conf.sink_notifications.topics)
        self.start_controller('ctl-a', controller={'fault_sinks': 'notifications'})
        api = self.rabbit.controller_api()
        fault = make_fault(kind='unhealthy')
        api.report_fault(None, fault)
        exit_ = {'instance_uuid': fault['instance_uuid'], 'host': 'cmp-1', 'reason': 'shutdown', 'at': time.time()}
        api.report_exit(None, exit_)
        self.assertEqual([], api.list_faults(None))
        self.assertEqual(base.EVENT_FAULT_RAISED, notifications.get(TIMEOUT)['event_type'])
        got = notifications.get(TIMEOUT)
        self.assertEqual(base.event_payload(fault, {'cleared_at': exit_['at'], 'cleared_by': 'exited'}),
                         got['payload'])
        # A payload the client would refuse, sent raw: the controller refuses it too, by class.
        raw = oslo_messaging.get_rpc_client(self.rabbit.transport,
                                            oslo_messaging.Target(topic=self.rabbit.conf.rpc.controller_topic),
                                            timeout=TIMEOUT)
        self.assertRaises(rpc.InvalidPayload, raw.call, {}, 'report_fault', fault={'instance_uuid': 'x'})

    def test_sigint_stops_cleanly(self) -> None:
        controller = self.start_controller('ctl-a', controller={'fault_sinks': ''})
        self.assertEqual(0, controller.stop(signal.SIGINT))


class TestPeers(ControllerTestCase):

    def test_two_controllers_share_one_registry(self) -> None:
        notifications = self.listen(self.rabbit.conf.sink_notifications.topics)
        sinks = {'controller': {'fault_sinks': 'log,notifications'}}
        one = self.start_controller('ctl-one', **sinks)
        other = self.start_controller('ctl-other', **sinks)
        fault = make_fault()

        self.assertEqual({'duplicate': False}, one.api.report_fault(None, fault))
        wait_for(lambda: other.api.list_faults(None), TIMEOUT, message='the fault to reach the other controller')
        # A retry that lands on the other controller is recognised.
        self.assertEqual({'duplicate': True}, other.api.report_fault(None, fault))
        expected = [dict(fault, state='active')]
        self.assertEqual(expected, one.api.list_faults(None))
        self.assertEqual(expected, other.api.list_faults(None))
        self.assertEqual(expected, self.rabbit.controller_api().list_faults(None))  # whichever answers

        other.api.report_recovery(None, recovery_of(fault))
        wait_for(lambda: not one.api.list_faults(None), TIMEOUT, message='the clear to reach the first controller')
        self.assertEqual([], other.api.list_faults(None))
        # Raised once (by one), cleared once (by other).
        first, second = notifications.get(TIMEOUT), notifications.get(TIMEOUT)
        self.assertEqual((base.EVENT_FAULT_RAISED, 'ha_guest.controller.ctl-one'),
                         (first['event_type'], first['publisher_id']))
        self.assertEqual((base.EVENT_FAULT_CLEARED, 'ha_guest.controller.ctl-other'),
                         (second['event_type'], second['publisher_id']))
        self.assertNothingMore(notifications)

    def test_late_controller_learns_from_its_peer(self) -> None:
        sinks = {'controller': {'fault_sinks': 'log'}}
        one = self.start_controller('ctl-one', **sinks)
        fault = make_fault()
        one.api.report_fault(None, fault)
        late = self.start_controller('ctl-late', **sinks)
        wait_for(lambda: late.api.list_faults(None), TIMEOUT, message='the late controller to learn the fault')
        self.assertEqual({'duplicate': True}, late.api.report_fault(None, fault))


class PlayedCompute:
    """Plays a compute agent: answers request_state_report with report_state of its active faults."""

    target = oslo_messaging.Target(version=rpc.COMPUTE_API_VERSION)

    def __init__(self, api: rpc.ControllerAPI, host: str) -> None:
        self.api = api
        self.host = host
        self.active: list[dict[str, Any]] = []
        self.requests = 0

    def request_state_report(self, ctxt: dict[str, Any]) -> None:
        self.requests += 1
        instances = [{'instance_uuid': f['instance_uuid'], 'state': 'failed', 'interval_ms': f['interval_ms'],
                      'incident_id': f['incident_id'], 'fault_kind': f['kind'], 'reason': f['reason']}
                     for f in self.active]
        instances.append({'instance_uuid': str(uuid.uuid4()), 'state': 'healthy', 'interval_ms': 100,
                          'incident_id': None, 'fault_kind': None, 'reason': ''})
        self.api.report_state(None, {'host': self.host, 'at': time.time(), 'instances': instances})


class TestRestart(ControllerTestCase):

    def test_restart_rebuilds_registry_from_state_reports(self) -> None:
        compute = PlayedCompute(self.rabbit.controller_api(), 'cmp-1')
        server = rpc_transport.get_rpc_server(
            self.rabbit.transport, rpc.compute_server_target(self.rabbit.conf, 'cmp-1'), [compute])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)
        notifications = self.listen(self.rabbit.conf.sink_notifications.topics)
        sinks = {'controller': {'fault_sinks': 'notifications'}}

        controller = self.start_controller('ctl-a', **sinks)
        wait_for(lambda: compute.requests == 1, TIMEOUT, message='the controller to ask for a state report on start')
        fault = make_fault()
        self.assertEqual({'duplicate': False}, controller.api.report_fault(None, fault))
        compute.active.append(fault)
        self.assertEqual(base.EVENT_FAULT_RAISED, notifications.get(TIMEOUT)['event_type'])
        self.assertEqual(0, controller.stop())

        restarted = self.start_controller('ctl-a', **sinks)
        wait_for(lambda: compute.requests == 2, TIMEOUT, message='the restarted controller to ask for a state report')
        listed = wait_for(lambda: restarted.api.list_faults(None), TIMEOUT, message='the registry to be rebuilt')
        self.assertEqual([(fault['instance_uuid'], fault['incident_id'], fault['kind'], 'active')],
                         [(f['instance_uuid'], f['incident_id'], f['kind'], f['state']) for f in listed])
        # The compute agent's retry after the restart is a duplicate; its recovery clears the fault.
        self.assertEqual({'duplicate': True}, restarted.api.report_fault(None, fault))
        restarted.api.report_recovery(None, recovery_of(fault))
        self.assertEqual([], restarted.api.list_faults(None))
