"""The report_batch payloads (controller API 1.2): envelope, items, size bound, answers."""

from __future__ import annotations

import testtools

from ha_guest.rpc import payloads
from ha_guest.rpc.errors import InvalidPayload
from tests.unit.rpc.test_payloads import FAULT

RECOVERY = {'instance_uuid': 'i-1', 'host': 'cmp-1', 'incident_id': 'inc-1', 'recovered_at': 2.0}
EXIT = {'instance_uuid': 'i-1', 'host': 'cmp-1', 'reason': 'bye', 'at': 3.0}


class TestBatch(testtools.TestCase):

    def test_items_keep_order_and_exact_keys(self) -> None:
        reports = [{'type': 'fault', 'payload': dict(FAULT, extra=1), 'more': 2},
                   {'type': 'recovery', 'payload': RECOVERY}, {'type': 'exit', 'payload': EXIT}]
        self.assertEqual([{'type': 'fault', 'payload': FAULT}, {'type': 'recovery', 'payload': RECOVERY},
                          {'type': 'exit', 'payload': EXIT}], payloads.batch(reports))

    def test_empty_batch(self) -> None:
        self.assertEqual([], payloads.batch([]))

    def test_size_bound(self) -> None:
        item = {'type': 'exit', 'payload': EXIT}
        self.assertEqual(payloads.MAX_BATCH, len(payloads.batch([item] * payloads.MAX_BATCH)))
        error = self.assertRaises(InvalidPayload, payloads.batch_list, [item] * (payloads.MAX_BATCH + 1))
        self.assertIn('at most %d' % payloads.MAX_BATCH, str(error))

    def test_rejects_envelope(self) -> None:
        for bad in (None, {}, 'fault', ({'type': 'exit', 'payload': EXIT},)):
            self.assertRaises(InvalidPayload, payloads.batch, bad)

    def test_rejects_items(self) -> None:
        for bad in (None, [], {'type': 'state', 'payload': {}}, {'payload': EXIT}, {'type': 'fault'},
                    {'type': 'fault', 'payload': dict(FAULT, kind='late')}, {'type': ['fault'], 'payload': FAULT}):
            self.assertRaises(InvalidPayload, payloads.batch_item, bad)

    def test_one_bad_item_refuses_a_whole_checked_batch(self) -> None:
        # The client checks everything it sends; the controller checks item by item (handler.report_batch).
        self.assertRaises(InvalidPayload, payloads.batch,
                          [{'type': 'exit', 'payload': EXIT}, {'type': 'exit', 'payload': dict(EXIT, at='now')}])


class TestBatchAnswer(testtools.TestCase):

    def test_one_result_per_report(self) -> None:
        answer = {'results': [{'duplicate': 1, 'x': 2}, {}, {'error': ValueError('no')}], 'extra': 1}
        self.assertEqual({'results': [{'duplicate': True}, {'duplicate': False}, {'error': 'no'}]},
                         payloads.batch_answer(answer, 3))

    def test_rejects(self) -> None:
        for bad, count in (([], 0), ({'results': [{}]}, 2), ({'results': None}, 0), ({'results': ['ok']}, 1)):
            self.assertRaises(InvalidPayload, payloads.batch_answer, bad, count)
