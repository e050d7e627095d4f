"""The RPC client classes on oslo.messaging's in-process fake driver: targets, versions, caps, timeouts."""

from __future__ import annotations

import queue
from typing import Any, Optional

import oslo_messaging
import testtools

from ha_guest import rpc
from ha_guest.rpc import transport as rpc_transport
from tests.messaging import ConfFixture
from tests.unit.rpc.test_payloads import FAULT

TIMEOUT = 5.0
SENDER = '6b3c1f0e-2a4d-4c8e-9f17-5d2b8a0c4e91'


class RecordingControllerEndpoint:
    """Stands in for the controller: records what it got."""

    target = oslo_messaging.Target(version=rpc.CONTROLLER_API_VERSION)

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()

    def report_fault(self, ctxt: dict[str, Any], fault: dict[str, Any]) -> dict[str, bool]:
        self.calls.put(('report_fault', fault))
        return {'duplicate': False}

    def report_recovery(self, ctxt: dict[str, Any], recovery: dict[str, Any]) -> None:
        self.calls.put(('report_recovery', recovery))

    def report_exit(self, ctxt: dict[str, Any], exit: dict[str, Any]) -> None:  # noqa: A002
        self.calls.put(('report_exit', exit))

    def report_state(self, ctxt: dict[str, Any], report: dict[str, Any]) -> None:
        self.calls.put(('report_state', report))

    def report_batch(self, ctxt: dict[str, Any], reports: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.put(('report_batch', {'reports': reports}))
        return {'results': [{'error': 'InvalidPayload: no'} if item['payload'].get('host') == 'bad'
                            else {'duplicate': item['type'] == 'fault', 'extra': 1} for item in reports]}

    def list_faults(self, ctxt: dict[str, Any], instance_uuid: Optional[str] = None,
                    host: Optional[str] = None) -> list[dict[str, Any]]:
        query = {'instance_uuid': instance_uuid, 'ctxt': ctxt}
        if host is not None:
            query['host'] = host
        self.calls.put(('list_faults', query))
        if instance_uuid == 'bad':
            raise rpc.InvalidPayload('bad instance')
        return [dict(FAULT, state='active')]

    def sgm_broadcast(self, ctxt: dict[str, Any], broadcasts: list[dict[str, Any]]) -> None:
        self.calls.put(('sgm_broadcast', {'broadcasts': broadcasts}))

    def sgm_status(self, ctxt: dict[str, Any], instance_uuid: str) -> dict[str, Any]:
        self.calls.put(('sgm_status', {'instance_uuid': instance_uuid}))
        return {'members': [{'uuid': instance_uuid, 'state': 'active', 'power_state': 'running', 'extra': 1}]}


class RecordingComputeEndpoint:
    target = oslo_messaging.Target(version=rpc.COMPUTE_API_VERSION)

    def __init__(self, name: str, calls: queue.Queue[str]) -> None:
        self.name = name
        self.calls = calls

    def request_state_report(self, ctxt: dict[str, Any]) -> None:
        self.calls.put(self.name)

    def sgm_deliver(self, ctxt: dict[str, Any], deliveries: list[dict[str, Any]]) -> None:
        self.calls.put('%s sgm_deliver %s' % (self.name, deliveries[0]['recipients']))


class RPCTestCase(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.fixture = self.useFixture(ConfFixture())
        self.conf = self.fixture.conf
        self.transport = rpc_transport.get_rpc_transport(self.conf)
        self.addCleanup(self.transport.cleanup)

    def serve(self, target: oslo_messaging.Target, endpoint: object) -> None:
        server = rpc_transport.get_rpc_server(self.transport, target, [endpoint])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)


class TestControllerAPI(RPCTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.endpoint = RecordingControllerEndpoint()
        self.serve(rpc.controller_server_target(self.conf), self.endpoint)
        self.api = rpc.ControllerAPI(self.conf, self.transport)

    def next_call(self) -> tuple[str, dict[str, Any]]:
        return self.endpoint.calls.get(timeout=TIMEOUT)

    def test_target(self) -> None:
        target = rpc.controller_server_target(self.conf)
        self.assertEqual(self.conf.rpc.controller_topic, target.topic)
        self.assertEqual('test-host', target.server)
        self.assertEqual(rpc.CONTROLLER_API_VERSION, rpc.ControllerAPI.VERSION)

    def test_report_batch_sends_exact_payloads_in_order(self) -> None:
        recovery = {'instance_uuid': 'i-1', 'host': 'cmp-1', 'incident_id': 'inc-1', 'recovered_at': 2.0}
        reports = [{'type': 'fault', 'payload': dict(FAULT, extra=1)}, {'type': 'recovery', 'payload': recovery},
                   {'type': 'recovery', 'payload': dict(recovery, host='bad')}]
        answer = self.api.report_batch(None, reports, timeout=1.0)
        self.assertEqual({'results': [{'duplicate': True}, {'duplicate': False}, {'error': 'InvalidPayload: no'}]},
                         answer)
        self.assertEqual(('report_batch', {'reports': [{'type': 'fault', 'payload': FAULT},
                                                       {'type': 'recovery', 'payload': recovery},
                                                       {'type': 'recovery', 'payload': dict(recovery, host='bad')}]}),
                         self.next_call())

    def test_report_batch_checks_before_sending(self) -> None:
        self.assertRaises(rpc.InvalidPayload, self.api.report_batch, None,
                          [{'type': 'fault', 'payload': FAULT}, {'type': 'state', 'payload': {}}])
        self.assertTrue(self.endpoint.calls.empty())

    def test_list_faults_of_a_host(self) -> None:
        self.assertEqual([dict(FAULT, state='active')], self.api.list_faults(None, host='cmp-1'))
        self.assertEqual(('list_faults', {'instance_uuid': None, 'ctxt': {}, 'host': 'cmp-1'}), self.next_call())
        self.api.list_faults(None)  # without host: a 1.0 call, understood by older controllers
        self.assertEqual(('list_faults', {'instance_uuid': None, 'ctxt': {}}), self.next_call())

    def test_renewed_client_has_a_transport_of_its_own(self) -> None:
        api = rpc.ControllerAPI(self.conf, self.transport, server='test-host', timeout=3.0)
        fresh = api.renewed()
        self.addCleanup(fresh.close)
        self.assertIsNot(self.transport, fresh.transport)
        self.assertEqual(3.0, fresh.timeout)
        self.assertEqual([dict(FAULT, state='active')], fresh.list_faults(None))

    def test_report_fault_sends_exact_payload(self) -> None:
        result = self.api.report_fault({'request_id': 'req-1'}, dict(FAULT, extra=1))
        self.assertEqual({'duplicate': False}, result)
        self.assertEqual(('report_fault', FAULT), self.next_call())

    def test_report_fault_checks_before_sending(self) -> None:
        self.assertRaises(rpc.InvalidPayload, self.api.report_fault, None, dict(FAULT, kind='late'))
        self.assertTrue(self.endpoint.calls.empty())

    def test_recovery_exit_state(self) -> None:
        recovery = {'instance_uuid': 'i-1', 'host': 'cmp-1', 'incident_id': 'inc-1', 'recovered_at': 2.0}
        self.assertIsNone(self.api.report_recovery(None, recovery))
        self.assertEqual(('report_recovery', recovery), self.next_call())
        exit_ = {'instance_uuid': 'i-1', 'host': 'cmp-1', 'reason': 'bye', 'at': 3.0}
        self.assertIsNone(self.api.report_exit(None, exit_))
        self.assertEqual(('report_exit', exit_), self.next_call())
        report = {'host': 'cmp-1', 'at': 4.0, 'instances': []}
        self.assertIsNone(self.api.report_state(None, report))  # a cast: returns at once
        self.assertEqual(('report_state', report), self.next_call())

    def test_list_faults(self) -> None:
        self.assertEqual([dict(FAULT, state='active')], self.api.list_faults(None, 'i-1'))
        self.assertEqual(('list_faults', {'instance_uuid': 'i-1', 'ctxt': {}}), self.next_call())

    def test_context_from_object(self) -> None:
        class Ctxt:
            def to_dict(self) -> dict[str, Any]:
                return {'user': 'vitrage'}

        self.api.list_faults(Ctxt())
        self.assertEqual({'user': 'vitrage'}, self.next_call()[1]['ctxt'])
        self.assertRaises(TypeError, self.api.list_faults, 'not a context')

    def test_remote_error_keeps_its_class(self) -> None:
        self.assertRaises(rpc.InvalidPayload, self.api.list_faults, None, 'bad')

    def test_timeout_from_conf(self) -> None:
        self.assertEqual(10, self.api.timeout)
        self.conf.set_override('call_timeout_s', 3, group='rpc')
        self.assertEqual(3, rpc.ControllerAPI(self.conf, self.transport).timeout)
        self.assertEqual(0.5, rpc.ControllerAPI(self.conf, self.transport, timeout=0.5).timeout)

    def test_call_times_out(self) -> None:
        api = rpc.ControllerAPI(self.conf, self.transport, server='nobody', timeout=0.2)
        self.assertRaises(oslo_messaging.MessagingTimeout, api.list_faults, None)

    def test_sgm_broadcast_is_a_checked_call(self) -> None:
        item = {'sender': SENDER.upper(), 'host': 'cmp-1', 'session': 'abc', 'ref_seq': 3, 'payload': 'aGk=',
                'stamp': 5, 'sent_at': 1.5, 'extra': 'dropped'}
        self.assertIsNone(self.api.sgm_broadcast(None, [item]))
        expected = dict(item, sender=SENDER)
        del expected['extra']
        self.assertEqual(('sgm_broadcast', {'broadcasts': [expected]}), self.next_call())
        self.assertRaises(rpc.InvalidPayload, self.api.sgm_broadcast, None, [dict(item, payload='x' * 5000)])
        self.assertRaises(rpc.InvalidPayload, self.api.sgm_broadcast, None, [dict(item, sender='me')])

    def test_sgm_status_answer_is_checked(self) -> None:
        answer = self.api.sgm_status(None, SENDER)
        self.assertEqual({'members': [{'uuid': SENDER, 'state': 'active', 'power_state': 'running'}]}, answer)
        self.assertEqual(('sgm_status', {'instance_uuid': SENDER}), self.next_call())

    def test_server_pins_one_controller(self) -> None:
        api = rpc.ControllerAPI(self.conf, self.transport, server='test-host')
        self.assertEqual([dict(FAULT, state='active')], api.list_faults(None))


class TestVersionCap(RPCTestCase):

    def test_no_cap_sends_newest(self) -> None:
        api = rpc.ControllerAPI(self.conf, self.transport)
        self.assertEqual(rpc.CONTROLLER_API_VERSION, api.version_cap)
        self.assertTrue(api.can_send_version('1.0'))
        self.assertTrue(api.can_send_version('1.2'))
        self.assertFalse(api.can_send_version('2.0'))

    def test_cap_1_1_refuses_batches_and_host_filter(self) -> None:
        self.conf.set_override('controller_version_cap', '1.1', group='rpc')
        api = rpc.ControllerAPI(self.conf, self.transport)
        self.assertFalse(api.can_send_version('1.2'))
        self.assertRaises(oslo_messaging.RPCVersionCapError, api.report_batch, None,
                          [{'type': 'fault', 'payload': FAULT}])
        self.assertRaises(oslo_messaging.RPCVersionCapError, api.list_faults, None, None, 'cmp-1')

    def test_cap_from_conf(self) -> None:
        self.conf.set_override('controller_version_cap', '1.0', group='rpc')
        self.conf.set_override('compute_version_cap', '1.0', group='rpc')
        self.assertEqual('1.0', rpc.ControllerAPI(self.conf, self.transport).version_cap)
        self.assertEqual('1.0', rpc.ComputeAPI(self.conf, self.transport).version_cap)

    def test_cap_1_0_refuses_server_group_messaging(self) -> None:
        self.conf.set_override('controller_version_cap', '1.0', group='rpc')
        self.conf.set_override('compute_version_cap', '1.0', group='rpc')
        self.assertRaises(oslo_messaging.RPCVersionCapError, rpc.ControllerAPI(self.conf, self.transport).sgm_status,
                          None, SENDER)
        self.assertRaises(oslo_messaging.RPCVersionCapError, rpc.ComputeAPI(self.conf, self.transport).sgm_nack,
                          None, 'cmp-1', [])

    def test_cap_below_a_method_refuses_to_send(self) -> None:
        endpoint = RecordingControllerEndpoint()
        self.serve(rpc.controller_server_target(self.conf), endpoint)
        self.conf.set_override('controller_version_cap', '0.9', group='rpc')
        api = rpc.ControllerAPI(self.conf, self.transport)
        self.assertFalse(api.can_send_version('1.0'))
        self.assertRaises(oslo_messaging.RPCVersionCapError, api.report_fault, None, FAULT)
        self.assertRaises(oslo_messaging.RPCVersionCapError, api.report_state, None,
                          {'host': 'h', 'at': 1.0, 'instances': []})
        self.assertTrue(endpoint.calls.empty())

    def test_compute_cap(self) -> None:
        self.conf.set_override('compute_version_cap', '0.1', group='rpc')
        api = rpc.ComputeAPI(self.conf, self.transport)
        self.assertRaises(oslo_messaging.RPCVersionCapError, api.request_state_report, None)


class TestComputeAPI(RPCTestCase):

    def test_request_state_report_is_fanout(self) -> None:
        calls: queue.Queue[str] = queue.Queue()
        for host in ('cmp-a', 'cmp-b'):
            self.serve(rpc.compute_server_target(self.conf, host), RecordingComputeEndpoint(host, calls))
        rpc.ComputeAPI(self.conf, self.transport).request_state_report(None)
        got = sorted([calls.get(timeout=TIMEOUT), calls.get(timeout=TIMEOUT)])
        self.assertEqual(['cmp-a', 'cmp-b'], got)

    def test_sgm_deliver_goes_to_one_host(self) -> None:
        calls: queue.Queue[str] = queue.Queue()
        for host in ('cmp-a', 'cmp-b'):
            self.serve(rpc.compute_server_target(self.conf, host), RecordingComputeEndpoint(host, calls))
        delivery = {'sender': SENDER, 'recipients': [SENDER.replace('1', '2')], 'payload': '', 'stamp': 1,
                    'sent_at': 1.0}
        rpc.ComputeAPI(self.conf, self.transport).sgm_deliver(None, 'cmp-b', [delivery])
        self.assertEqual("cmp-b sgm_deliver ['%s']" % SENDER.replace('1', '2'), calls.get(timeout=TIMEOUT))
        self.assertRaises(queue.Empty, calls.get, timeout=0.3)

    def test_target(self) -> None:
        target = rpc.compute_server_target(self.conf)
        self.assertEqual((self.conf.rpc.compute_topic, 'test-host'), (target.topic, target.server))


class TestOwnTransport(testtools.TestCase):

    def test_client_builds_and_releases_its_transport(self) -> None:
        conf = self.useFixture(ConfFixture()).conf
        api = rpc.ControllerAPI(conf)
        self.assertIsInstance(api.transport, oslo_messaging.Transport)
        api.close()
