"""Sink dispatch: each sink in its own thread; a failing or stuck sink never holds up the others."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import fixtures
import testtools

from ha_guest.controller.dispatch import SinkDispatcher, Worker
from ha_guest.sinks.base import FaultSink
from tests.unit.controller.test_registry import fault

TIMEOUT = 5.0
CLEARED = {'cleared_at': 2.0, 'cleared_by': 'recovered'}


class RecordingSink(FaultSink):
    def __init__(self) -> None:
        super().__init__(None, None)
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.closed = False

    def fault_raised(self, fault: dict[str, Any]) -> None:
        fault['mutated'] = True  # must not leak into another sink's copy
        self.events.put(('raised', fault['incident_id']))

    def fault_cleared(self, fault: dict[str, Any], cleared: dict[str, Any]) -> None:
        self.events.put(('cleared', fault['incident_id'], cleared['cleared_by']))

    def close(self) -> None:
        self.closed = True


class FailingSink(RecordingSink):
    def fault_raised(self, fault: dict[str, Any]) -> None:
        raise RuntimeError('sink is broken')

    def close(self) -> None:
        raise RuntimeError('close is broken too')


class StuckSink(RecordingSink):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def fault_raised(self, fault: dict[str, Any]) -> None:
        self.release.wait(TIMEOUT)
        super().fault_raised(fault)


class TestSinkDispatcher(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))

    def test_every_sink_gets_every_event_in_order(self) -> None:
        sinks = {'a': RecordingSink(), 'b': RecordingSink()}
        dispatcher = SinkDispatcher(sinks, queue_size=10)
        dispatcher.start()
        dispatcher.fault_raised(fault(incident='x'))
        dispatcher.fault_cleared(fault(incident='x'), CLEARED)
        dispatcher.stop(TIMEOUT)
        for sink in sinks.values():
            self.assertEqual(('raised', 'x'), sink.events.get_nowait())
            self.assertEqual(('cleared', 'x', 'recovered'), sink.events.get_nowait())
            self.assertTrue(sink.closed)

    def test_lanes_keep_each_instances_order(self) -> None:
        sink = RecordingSink()
        sink.concurrent = True
        dispatcher = SinkDispatcher({'a': sink}, queue_size=1000, lanes=4)
        self.assertEqual(4, len(dispatcher.workers['a']._workers))
        dispatcher.start()
        for i in range(50):
            dispatcher.fault_raised(fault(instance='i-%d' % i, incident='x%d' % i))
            dispatcher.fault_cleared(fault(instance='i-%d' % i, incident='x%d' % i), CLEARED)
        dispatcher.stop(TIMEOUT)
        seen: dict[str, list[str]] = {}
        while not sink.events.empty():
            event = sink.events.get_nowait()
            seen.setdefault(event[1], []).append(event[0])
        self.assertEqual(50, len(seen))
        self.assertEqual({('raised', 'cleared')}, {tuple(kinds) for kinds in seen.values()})

    def test_a_sink_not_concurrent_gets_one_lane(self) -> None:
        dispatcher = SinkDispatcher({'a': RecordingSink()}, queue_size=10, lanes=4)
        self.assertEqual(1, len(dispatcher.workers['a']._workers))

    def test_failing_and_stuck_sinks_are_isolated(self) -> None:
        good, stuck = RecordingSink(), StuckSink()
        dispatcher = SinkDispatcher({'bad': FailingSink(), 'stuck': stuck, 'good': good}, queue_size=10)
        dispatcher.start()
        self.addCleanup(dispatcher.stop, TIMEOUT)
        self.addCleanup(stuck.release.set)
        started = time.monotonic()
        dispatcher.fault_raised(fault(incident='x'))
        dispatcher.fault_raised(fault(incident='y'))
        self.assertLess(time.monotonic() - started, 0.5)  # submitting never waits for a sink
        self.assertEqual(('raised', 'x'), good.events.get(timeout=TIMEOUT))
        self.assertEqual(('raised', 'y'), good.events.get(timeout=TIMEOUT))
        self.assertTrue(stuck.events.empty())
        stuck.release.set()
        self.assertEqual(('raised', 'x'), stuck.events.get(timeout=TIMEOUT))
        bad = dispatcher.workers['bad']
        deadline = time.monotonic() + TIMEOUT
        while bad.failed < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(2, bad.failed)
        self.assertIn('sink-bad: fault_raised failed', self.log.output)
        self.assertIn('sink is broken', self.log.output)

    def test_close_failure_is_logged(self) -> None:
        dispatcher = SinkDispatcher({'bad': FailingSink()}, queue_size=1)
        dispatcher.start()
        dispatcher.stop(TIMEOUT)
        self.assertIn('sink bad: close failed', self.log.output)


class TestWorker(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))

    def test_full_queue_drops_and_logs(self) -> None:
        release = threading.Event()
        done: list[int] = []
        worker = Worker('test', queue_size=2)
        worker.start()
        self.addCleanup(worker.stop, TIMEOUT)
        self.addCleanup(release.set)
        self.assertTrue(worker.submit(release.wait, TIMEOUT))  # taken by the thread, then blocks
        deadline = time.monotonic() + TIMEOUT
        while worker.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(worker.submit(done.append, 1))
        self.assertTrue(worker.submit(done.append, 2))
        self.assertFalse(worker.submit(done.append, 3))
        self.assertEqual(1, worker.dropped)
        self.assertIn('test: queue full', self.log.output)
        release.set()
        self.assertTrue(worker.stop(TIMEOUT))
        self.assertEqual([1, 2], done)

    def test_stop_is_bounded_when_stuck(self) -> None:
        release = threading.Event()
        self.addCleanup(release.set)
        worker = Worker('stuck', queue_size=1)
        worker.start()
        worker.submit(release.wait, TIMEOUT)
        worker.submit(release.wait, TIMEOUT)
        started = time.monotonic()
        self.assertFalse(worker.stop(0.2))
        self.assertLess(time.monotonic() - started, 2.0)

    def test_stop_without_start(self) -> None:
        self.assertTrue(Worker('idle', queue_size=1).stop(0.1))
