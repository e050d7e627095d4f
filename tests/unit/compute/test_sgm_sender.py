"""The SGM sender's threads with a recording controller client: batches, order, failures, status calls."""

from __future__ import annotations

import queue
import threading
from typing import Any, Dict, List, Optional

import testtools

from ha_guest.compute.sgm_sender import SgmSender

TIMEOUT = 5.0


class FakeClient:
    """Records sgm_broadcast batches; the first call blocks until released, so a batch forms behind it."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: List[List[Dict[str, Any]]] = []
        self.release = threading.Event()
        self.first_call = threading.Event()
        self.fail = fail
        self.timeouts: List[Optional[float]] = []

    def sgm_broadcast(self, ctxt: Any, broadcasts: List[Dict[str, Any]], timeout: Optional[float] = None,
                      retry: Optional[int] = None) -> None:
        self.timeouts.append(timeout)
        self.first_call.set()
        self.release.wait(TIMEOUT)
        if self.fail:
            raise RuntimeError('no controller')
        self.batches.append(list(broadcasts))

    def sgm_status(self, ctxt: Any, instance_uuid: str, timeout: Optional[float] = None,
                   retry: Optional[int] = None) -> Dict[str, Any]:
        if self.fail:
            raise RuntimeError('no controller')
        return {'members': [{'uuid': instance_uuid, 'state': 'active', 'power_state': 'running'}]}


class TestSgmSender(testtools.TestCase):

    def make(self, client: FakeClient, **kwargs: Any) -> tuple[SgmSender, 'queue.Queue[Any]']:
        failures: queue.Queue[Any] = queue.Queue()
        sender = SgmSender(client, lambda batch, why: failures.put((batch, why)), timeout_s=1.5, **kwargs)
        sender.start()
        self.addCleanup(sender.stop, 1.0)
        self.addCleanup(client.release.set)
        return sender, failures

    def test_one_call_at_a_time_in_order_and_batched_meanwhile(self) -> None:
        client = FakeClient()
        sender, _ = self.make(client)
        self.assertTrue(sender.broadcast({'n': 0}))
        self.assertTrue(client.first_call.wait(TIMEOUT))
        for n in range(1, 6):  # queued while the first call is under way
            self.assertTrue(sender.broadcast({'n': n}))
        client.release.set()
        sender.stop(TIMEOUT)
        self.assertEqual([[0], [1, 2, 3, 4, 5]], [[item['n'] for item in batch] for batch in client.batches])
        self.assertEqual([1.5, 1.5], client.timeouts)
        self.assertEqual(6, sender.counters['broadcasts_sent'])

    def test_a_failed_call_hands_the_batch_back(self) -> None:
        client = FakeClient(fail=True)
        client.release.set()
        sender, failures = self.make(client)
        sender.broadcast({'n': 1})
        batch, why = failures.get(timeout=TIMEOUT)
        self.assertEqual(([{'n': 1}], 'unavailable'), (batch, why))
        self.assertEqual(1, sender.counters['call_failures'])

    def test_full_queue_refuses(self) -> None:
        client = FakeClient()
        sender, _ = self.make(client, queue_size=2)
        sender.broadcast({'n': 0})
        self.assertTrue(client.first_call.wait(TIMEOUT))  # the thread holds item 0; the queue is empty
        self.assertTrue(sender.broadcast({'n': 1}))
        self.assertTrue(sender.broadcast({'n': 2}))
        self.assertFalse(sender.broadcast({'n': 3}))
        self.assertEqual(1, sender.counters['queue_full'])

    def test_status_answer_or_unavailable(self) -> None:
        answers: queue.Queue[Dict[str, Any]] = queue.Queue()
        sender, _ = self.make(FakeClient())
        self.assertTrue(sender.status('i-1', answers.put))
        self.assertEqual('i-1', answers.get(timeout=TIMEOUT)['members'][0]['uuid'])
        broken, _ = self.make(FakeClient(fail=True))
        broken.status('i-2', answers.put)
        self.assertEqual('unavailable', answers.get(timeout=TIMEOUT)['nack'])
