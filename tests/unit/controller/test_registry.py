"""FaultRegistry: raise once, clear, reconcile with state reports, bounds, thread safety."""

from __future__ import annotations

import threading
from typing import Any

import testtools

from ha_guest.controller.registry import ACTIVE, ENDED, UNKNOWN, FaultRegistry, fault_from_report, key_of
from ha_guest.rpc import FaultRegistryFull


def fault(instance: str = 'i-1', incident: str = 'inc-1', host: str = 'cmp-1', at: float = 100.0,
          kind: str = 'missed') -> dict[str, Any]:
    return {'instance_uuid': instance, 'host': host, 'incident_id': incident, 'kind': kind, 'reason': 'r',
            'detected_at': at, 'interval_ms': 100, 'misses': 1}


def item(instance: str, incident: str | None = None, kind: str | None = None, **extra: Any) -> dict[str, Any]:
    """A state report's instance; ``extra``: a newer agent's keys (detected_at, announced)."""
    return dict({'instance_uuid': instance, 'state': 'failed' if incident else 'healthy', 'interval_ms': 100,
                 'incident_id': incident, 'fault_kind': kind if incident is None else (kind or 'missed'),
                 'reason': 'r' if incident else ''}, **extra)


def report(host: str, at: float, *items: dict[str, Any], agent: bool = False) -> dict[str, Any]:
    """A state report; ``agent``: from a newer agent (it says who it is)."""
    data: dict[str, Any] = {'host': host, 'at': at, 'instances': list(items)}
    if agent:
        data['agent'] = {'version': '1', 'started_at': 1.0, 'report_interval_s': 30.0}
    return data


class TestRaiseAndClear(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.registry = FaultRegistry(max_faults=10)

    def test_raise_once(self) -> None:
        self.assertTrue(self.registry.add(fault()))
        self.assertFalse(self.registry.add(fault()))
        self.assertFalse(self.registry.add(fault(at=200.0)))  # a retry, detected again later: same incident
        self.assertEqual(1, len(self.registry))
        self.assertEqual([fault()], self.registry.list())

    def test_incidents_are_separate(self) -> None:
        self.assertTrue(self.registry.add(fault(incident='a')))
        self.assertTrue(self.registry.add(fault(incident='b', at=101.0)))
        self.assertTrue(self.registry.add(fault(instance='i-2')))
        self.assertEqual(['a', 'b'], [f['incident_id'] for f in self.registry.list('i-1')])
        self.assertEqual(3, len(self.registry.list()))

    def test_list_returns_copies(self) -> None:
        self.registry.add(fault())
        self.registry.list()[0]['reason'] = 'changed'
        self.assertEqual('r', self.registry.list()[0]['reason'])

    def test_clear(self) -> None:
        self.registry.add(fault())
        gone = self.registry.clear('i-1', 'inc-1', 150.0, 'recovered')
        self.assertIsNotNone(gone)
        assert gone is not None
        self.assertEqual(fault(), gone.fault)
        self.assertEqual({'cleared_at': 150.0, 'cleared_by': 'recovered'}, gone.cleared)
        self.assertEqual([], self.registry.list())
        self.assertIsNone(self.registry.clear('i-1', 'inc-1', 151.0, 'recovered'))
        self.assertTrue(self.registry.was_cleared(('i-1', 'inc-1')))

    def test_explicit_report_after_clear_raises_again(self) -> None:
        self.registry.add(fault())
        self.registry.clear('i-1', 'inc-1', 150.0, 'resync')
        self.assertTrue(self.registry.add(fault()))
        self.assertFalse(self.registry.was_cleared(('i-1', 'inc-1')))

    def test_late_copy_of_a_recovered_incident_is_a_duplicate(self) -> None:
        # E.g. a report whose call was abandoned while a broker node hung, delivered after the recovery.
        for cleared_by in ('recovered', 'exited'):
            registry = FaultRegistry(max_faults=10)
            registry.add(fault(at=100.0))
            registry.clear('i-1', 'inc-1', 150.0, cleared_by)
            self.assertFalse(registry.add(fault(at=100.0)))
            self.assertEqual([], registry.list())
            self.assertTrue(registry.was_cleared(('i-1', 'inc-1')))
            self.assertTrue(registry.add(fault(at=160.0)))  # detected again after the end: open again

    def test_clear_instance(self) -> None:
        self.registry.add(fault(incident='a'))
        self.registry.add(fault(incident='b'))
        self.registry.add(fault(instance='i-2'))
        gone = self.registry.clear_instance('i-1', 160.0, 'exited')
        self.assertEqual({'a', 'b'}, {g.fault['incident_id'] for g in gone})
        self.assertEqual({'exited'}, {g.cleared['cleared_by'] for g in gone})
        self.assertEqual(['i-2'], [f['instance_uuid'] for f in self.registry.list()])
        self.assertEqual([], self.registry.clear_instance('i-1', 161.0, 'exited'))


class TestBounds(testtools.TestCase):

    def test_full(self) -> None:
        registry = FaultRegistry(max_faults=2)
        registry.add(fault(incident='a'))
        registry.add(fault(incident='b'))
        self.assertFalse(registry.add(fault(incident='a')))  # a duplicate is still recognised
        exc = self.assertRaises(FaultRegistryFull, registry.add, fault(incident='c'))
        self.assertIn('max_faults', str(exc))
        registry.clear('i-1', 'a', 1.0, 'recovered')
        self.assertTrue(registry.add(fault(incident='c')))

    def test_cleared_memory_is_bounded(self) -> None:
        registry = FaultRegistry(max_faults=3)
        for n in range(5):
            registry.clear('i-1', 'inc-%d' % n, 1.0, 'recovered')
        self.assertFalse(registry.was_cleared(('i-1', 'inc-0')))
        self.assertTrue(registry.was_cleared(('i-1', 'inc-4')))

    def test_reconcile_respects_bound(self) -> None:
        registry = FaultRegistry(max_faults=1)
        added, _, _ = registry.reconcile(report('cmp-1', 200.0, item('i-1', 'a'), item('i-2', 'b')))
        self.assertEqual(1, len(added))
        self.assertEqual(1, len(registry))

    def test_invalid_bound(self) -> None:
        self.assertRaises(ValueError, FaultRegistry, 0)


class TestReconcile(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.registry = FaultRegistry()

    def test_adds_active_faults(self) -> None:
        added, _, cleared = self.registry.reconcile(
            report('cmp-1', 200.0, item('i-1', 'inc-1', 'unhealthy'), item('i-2')))
        expected = fault_from_report('cmp-1', 200.0, item('i-1', 'inc-1', 'unhealthy'))
        self.assertEqual([expected], added)
        self.assertEqual([], cleared)
        self.assertEqual('unhealthy', expected['kind'])
        self.assertEqual(200.0, expected['detected_at'])
        self.assertEqual([expected], self.registry.list())

    def test_known_fault_untouched(self) -> None:
        self.registry.add(fault())
        added, _, cleared = self.registry.reconcile(report('cmp-1', 200.0, item('i-1', 'inc-1')))
        self.assertEqual(([], []), (added, cleared))
        self.assertEqual([fault()], self.registry.list())

    def test_clears_what_the_host_no_longer_reports(self) -> None:
        self.registry.add(fault(instance='i-1'))  # reported healthy now
        self.registry.add(fault(instance='i-2'))  # not reported at all
        self.registry.add(fault(instance='i-3', incident='old'))  # reported with a new incident
        self.registry.add(fault(instance='i-4', host='cmp-2'))  # another host's
        added, _, cleared = self.registry.reconcile(
            report('cmp-1', 200.0, item('i-1'), item('i-3', 'new')))
        self.assertEqual({('i-1', 'inc-1'), ('i-2', 'inc-1'), ('i-3', 'old')},
                         {(c.fault['instance_uuid'], c.fault['incident_id']) for c in cleared})
        self.assertEqual({'cleared_at': 200.0, 'cleared_by': 'resync'}, cleared[0].cleared)
        self.assertEqual([('i-3', 'new')], [(f['instance_uuid'], f['incident_id']) for f in added])
        self.assertEqual({'i-3', 'i-4'}, {f['instance_uuid'] for f in self.registry.list()})

    def test_older_report_does_not_clear_newer_fault(self) -> None:
        self.registry.add(fault(at=300.0))
        added, _, cleared = self.registry.reconcile(report('cmp-1', 250.0))
        self.assertEqual(([], []), (added, cleared))
        self.assertEqual(1, len(self.registry))

    def test_stale_report_does_not_revive_a_cleared_incident(self) -> None:
        self.registry.add(fault())
        self.registry.clear('i-1', 'inc-1', 150.0, 'recovered')
        added, _, _ = self.registry.reconcile(report('cmp-1', 140.0, item('i-1', 'inc-1')))
        self.assertEqual([], added)
        self.assertEqual(0, len(self.registry))


class TestAnnounced(testtools.TestCase):
    """A newer agent's state report: incidents announced already are re-learned, never raised again."""

    def setUp(self) -> None:
        super().setUp()
        self.registry = FaultRegistry(resync_clear_grace_s=10.0)

    def test_announced_is_relearned_with_its_detection_time(self) -> None:
        added, relearned, cleared = self.registry.reconcile(report(
            'cmp-1', 200.0, item('i-1', 'inc-1', detected_at=120.5, announced=True), agent=True))
        self.assertEqual(([], []), (added, cleared))
        self.assertEqual([fault_from_report('cmp-1', 200.0, item('i-1', 'inc-1', detected_at=120.5))], relearned)
        self.assertEqual(120.5, relearned[0]['detected_at'])
        self.assertEqual(relearned, self.registry.list())

    def test_not_announced_is_left_to_its_fault_report(self) -> None:
        result = self.registry.reconcile(report(
            'cmp-1', 200.0, item('i-1', 'inc-1', detected_at=199.0, announced=False), agent=True))
        self.assertEqual(([], [], []), tuple(result))
        self.assertEqual(0, len(self.registry))
        # Still open on its host: an intent for it is not for an ended incident.
        self.assertEqual(ACTIVE, self.registry.state_of(('i-1', 'inc-1'), 'cmp-1', 199.0))

    def test_absent_key_is_the_old_behaviour(self) -> None:
        added, relearned, _ = self.registry.reconcile(report('cmp-1', 200.0, item('i-1', 'inc-1')))
        self.assertEqual(1, len(added))
        self.assertEqual([], relearned)
        self.assertEqual(200.0, added[0]['detected_at'])

    def test_cleared_incident_is_not_relearned(self) -> None:
        self.registry.clear('i-1', 'inc-1', 150.0, 'recovered')
        result = self.registry.reconcile(report('cmp-1', 200.0, item('i-1', 'inc-1', detected_at=120.0,
                                                                     announced=True), agent=True))
        self.assertEqual(([], [], []), tuple(result))

    def test_newer_agent_clears_after_the_grace(self) -> None:
        self.registry.add(fault(at=100.0))
        # Missing from the report: its recovery report may be on its way to another controller.
        self.assertEqual([], self.registry.reconcile(report('cmp-1', 200.0, agent=True)).cleared)
        self.assertEqual([], self.registry.reconcile(report('cmp-1', 205.0, agent=True)).cleared)
        (gone,) = self.registry.reconcile(report('cmp-1', 210.0, agent=True)).cleared
        self.assertEqual({'cleared_at': 210.0, 'cleared_by': 'resync'}, gone.cleared)

    def test_shown_again_restarts_the_grace(self) -> None:
        self.registry.add(fault(at=100.0))
        self.registry.reconcile(report('cmp-1', 200.0, agent=True))
        self.registry.reconcile(report('cmp-1', 205.0, item('i-1', 'inc-1', announced=True), agent=True))
        self.assertEqual([], self.registry.reconcile(report('cmp-1', 212.0, agent=True)).cleared)
        self.assertEqual(1, len(self.registry.reconcile(report('cmp-1', 222.0, agent=True)).cleared))

    def test_older_agent_clears_at_once(self) -> None:
        self.registry.add(fault(at=100.0))
        self.assertEqual(1, len(self.registry.reconcile(report('cmp-1', 200.0)).cleared))


class TestStateOf(testtools.TestCase):

    def test_states(self) -> None:
        registry = FaultRegistry()
        registry.add(fault(incident='open'))
        registry.clear('i-1', 'gone', 150.0, 'recovered')
        self.assertEqual(ACTIVE, registry.state_of(('i-1', 'open')))
        self.assertEqual(ENDED, registry.state_of(('i-1', 'gone')))
        self.assertEqual(UNKNOWN, registry.state_of(('i-1', 'never')))

    def test_from_the_hosts_latest_report(self) -> None:
        registry = FaultRegistry()
        registry.reconcile(report('cmp-1', 200.0, item('i-1', 'open', announced=False), agent=True))
        self.assertEqual(ACTIVE, registry.state_of(('i-1', 'open'), 'cmp-1', 190.0))
        self.assertEqual(ENDED, registry.state_of(('i-1', 'other'), 'cmp-1', 190.0))
        # A report taken before the incident's detection says nothing of it; nor does another host's.
        self.assertEqual(UNKNOWN, registry.state_of(('i-1', 'other'), 'cmp-1', 201.0))
        self.assertEqual(UNKNOWN, registry.state_of(('i-1', 'other'), 'cmp-2', 190.0))
        self.assertEqual(UNKNOWN, registry.state_of(('i-1', 'other')))
        # An older report arriving late does not replace the latest.
        registry.reconcile(report('cmp-1', 150.0, agent=True))
        self.assertEqual(ACTIVE, registry.state_of(('i-1', 'open'), 'cmp-1', 140.0))

    def test_wait_known(self) -> None:
        registry = FaultRegistry()
        wanted = [(key_of(fault()), 'cmp-1', 100.0)]
        self.assertFalse(registry.wait_known(wanted, 0.05))
        timer = threading.Timer(0.05, registry.merge, ([fault()],))
        timer.start()
        self.addCleanup(timer.join)
        self.assertTrue(registry.wait_known(wanted, 5.0))


class TestMerge(testtools.TestCase):

    def test_merge(self) -> None:
        registry = FaultRegistry()
        registry.add(fault(incident='known'))
        registry.clear('i-1', 'gone', 1.0, 'recovered')
        added = registry.merge([fault(incident='known'), fault(incident='gone'), fault(incident='new')])
        self.assertEqual(['new'], [f['incident_id'] for f in added])
        self.assertEqual(2, len(registry))


class TestThreads(testtools.TestCase):

    def test_concurrent_reports_raise_once(self) -> None:
        registry = FaultRegistry()
        results: list[bool] = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def report_all() -> None:
            barrier.wait()
            for n in range(200):
                new = registry.add(fault(incident='inc-%d' % n))
                with lock:
                    results.append(new)

        threads = [threading.Thread(target=report_all) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(200, results.count(True))
        self.assertEqual(200, len(registry))
