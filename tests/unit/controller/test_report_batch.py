"""report_batch and list_faults(host=) at the controller (API 1.2): handler and endpoint."""

from __future__ import annotations

from typing import Any

from ha_guest.controller.endpoint import ControllerEndpoint
from ha_guest.rpc import InvalidPayload, payloads
from tests.unit.controller.test_handler import HandlerTestCase, exit_report, recovery
from tests.unit.controller.test_registry import fault


def batch(*items: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{'type': kind, 'payload': payload} for kind, payload in items]


class TestReportBatch(HandlerTestCase):

    def test_applied_in_order_one_result_each(self) -> None:
        results = self.a.report_batch(batch(('fault', fault()), ('fault', fault()), ('recovery', recovery()),
                                            ('fault', fault(incident='inc-2')), ('exit', exit_report())))
        self.assertEqual([{'duplicate': False}, {'duplicate': True}, {'duplicate': False}, {'duplicate': False},
                          {'duplicate': False}], results)
        self.assertEqual([('raised', 'i-1', 'inc-1'), ('cleared', 'i-1', 'inc-1', 'recovered'),
                          ('raised', 'i-1', 'inc-2'), ('cleared', 'i-1', 'inc-2', 'exited')], self.sinks_a.events)
        self.assertEqual([], self.a.list_faults())
        self.assertEqual([], self.b.list_faults())  # the peer followed

    def test_peers_hear_a_storm_in_few_casts_in_order(self) -> None:
        c, _ = self.controller('c', max_faults=1000)
        d, sinks_d = self.controller('d', max_faults=1000)
        storm = [('fault', fault(instance='i-%d' % i)) for i in range(600)]
        c.report_batch(batch(*storm, ('recovery', recovery(instance='i-0')), ('fault', fault(instance='x'))))
        self.assertEqual([('c', 'sync_faults'), ('c', 'sync_faults'), ('c', 'sync_clear'), ('c', 'sync_faults')],
                         self.bus.casts)
        self.assertEqual(600, len(d.list_faults()))  # 599 of the storm and x: i-0 recovered
        self.assertNotIn('i-0', {f['instance_uuid'] for f in d.list_faults()})
        self.assertEqual([], sinks_d.events)  # the peer announces nothing again

    def test_a_bad_item_does_not_refuse_the_others(self) -> None:
        small, sinks = self.controller('small', max_faults=1)
        results = small.report_batch(batch(('fault', {'instance_uuid': 'i-1'}), ('fault', fault(incident='x')),
                                           ('fault', fault(incident='y'))) + [{'type': 'state', 'payload': {}}])
        self.assertEqual('InvalidPayload', results[0]['error'].split(':')[0])
        self.assertEqual({'duplicate': False}, results[1])
        self.assertEqual('FaultRegistryFull', results[2]['error'].split(':')[0])
        self.assertIn('error', results[3])
        self.assertEqual([('raised', 'i-1', 'x')], sinks.events)

    def test_again_is_harmless(self) -> None:
        # An agent that gave up on a stuck call sends the same batch again.
        items = batch(('fault', fault()), ('fault', fault(instance='i-2')), ('recovery', recovery()))
        self.a.report_batch(items)
        self.assertEqual([{'duplicate': True}, {'duplicate': True}, {'duplicate': False}],
                         self.a.report_batch(items[1:2] * 2 + items[2:]))
        self.assertEqual(['i-2'], [f['instance_uuid'] for f in self.a.list_faults()])
        self.assertEqual(3, len(self.sinks_a.events))

    def test_envelope_refused_whole(self) -> None:
        self.assertRaises(InvalidPayload, self.a.report_batch, {'type': 'fault'})
        self.assertRaises(InvalidPayload, self.a.report_batch, batch(('exit', exit_report())) *
                          (payloads.MAX_BATCH + 1))
        self.assertEqual([], self.sinks_a.events)


class TestEndpoint(HandlerTestCase):

    def test_report_batch_answer(self) -> None:
        endpoint = ControllerEndpoint(self.a)
        answer = endpoint.report_batch({}, batch(('fault', fault()), ('fault', fault())))
        self.assertEqual({'results': [{'duplicate': False}, {'duplicate': True}]}, answer)

    def test_list_faults_of_a_host(self) -> None:
        endpoint = ControllerEndpoint(self.a)
        self.a.report_fault(fault(instance='i-1', host='cmp-1'))
        self.a.report_fault(fault(instance='i-2', host='cmp-2'))
        self.assertEqual(['i-2'], [f['instance_uuid'] for f in endpoint.list_faults({}, host='cmp-2')])
        self.assertEqual([], endpoint.list_faults({}, 'i-1', host='cmp-2'))
        self.assertEqual(2, len(endpoint.list_faults({})))  # an older agent (1.0): every fault
