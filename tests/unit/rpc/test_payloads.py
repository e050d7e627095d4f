"""The payload checks of the RPC APIs: exact keys out, clear errors in."""

from __future__ import annotations

import testtools

from ha_guest.rpc import InvalidPayload, payloads

FAULT = {
    'instance_uuid': 'i-1', 'host': 'cmp-1', 'incident_id': 'inc-1', 'kind': 'missed', 'reason': 'no answer',
    'detected_at': 1700000000.5, 'interval_ms': 100, 'misses': 1,
}


class TestFault(testtools.TestCase):

    def test_exact_keys(self) -> None:
        result = payloads.fault(dict(FAULT, extra='dropped'))
        self.assertEqual(FAULT, result)
        self.assertEqual(payloads.FAULT_KEYS, tuple(result))

    def test_defaults(self) -> None:
        result = payloads.fault({k: FAULT[k] for k in ('instance_uuid', 'host', 'incident_id', 'kind',
                                                       'detected_at')})
        self.assertEqual('', result['reason'])
        self.assertEqual(0, result['interval_ms'])
        self.assertEqual(0, result['misses'])
        self.assertIsInstance(result['detected_at'], float)

    def test_unhealthy(self) -> None:
        self.assertEqual('unhealthy', payloads.fault(dict(FAULT, kind='unhealthy'))['kind'])

    def test_rejects(self) -> None:
        for bad in ({'instance_uuid': ''}, {'host': None}, {'incident_id': 3}, {'kind': 'other'},
                    {'detected_at': 'now'}, {'detected_at': True}, {'misses': -1}, {'interval_ms': 1.5}):
            self.assertRaises(InvalidPayload, payloads.fault, dict(FAULT, **bad))
        self.assertRaises(InvalidPayload, payloads.fault, ['not', 'a', 'dict'])

    def test_error_names_the_key(self) -> None:
        exc = self.assertRaises(InvalidPayload, payloads.fault, dict(FAULT, kind='bad'))
        self.assertIn("'kind'", str(exc))
        self.assertIsInstance(exc, ValueError)


class TestOthers(testtools.TestCase):

    def test_recovery(self) -> None:
        recovery = {'instance_uuid': 'i-1', 'host': 'h', 'incident_id': 'inc', 'recovered_at': 5}
        self.assertEqual(dict(recovery, recovered_at=5.0), payloads.recovery(dict(recovery, x=1)))
        self.assertRaises(InvalidPayload, payloads.recovery, dict(recovery, incident_id=None))

    def test_exit(self) -> None:
        exit_ = {'instance_uuid': 'i-1', 'host': 'h', 'reason': 'shutdown', 'at': 5.0}
        self.assertEqual(exit_, payloads.exit_report(exit_))
        self.assertEqual('', payloads.exit_report(dict(exit_, reason=None))['reason'])
        self.assertRaises(InvalidPayload, payloads.exit_report, dict(exit_, at=None))

    def test_state_report(self) -> None:
        instances = [
            {'instance_uuid': 'i-1', 'state': 'healthy', 'interval_ms': 100, 'incident_id': None,
             'fault_kind': None, 'reason': ''},
            {'instance_uuid': 'i-2', 'state': 'failed', 'interval_ms': 100, 'incident_id': 'inc',
             'fault_kind': 'missed', 'reason': 'no answer'},
        ]
        report = {'host': 'h', 'at': 7.0, 'instances': [dict(instances[0], connected=True), instances[1]]}
        self.assertEqual({'host': 'h', 'at': 7.0, 'instances': instances}, payloads.state_report(report))

    def test_state_report_rejects(self) -> None:
        item = {'instance_uuid': 'i', 'state': 'failed', 'interval_ms': 100, 'incident_id': 'x',
                'fault_kind': 'missed', 'reason': ''}
        for bad in ({'instances': None}, {'instances': [dict(item, fault_kind=None)]},
                    {'instances': [dict(item, incident_id=None)]}, {'host': ''}):
            report = dict({'host': 'h', 'at': 1.0, 'instances': [item]}, **bad)
            self.assertRaises(InvalidPayload, payloads.state_report, report)
