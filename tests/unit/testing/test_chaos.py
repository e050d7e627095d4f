"""The chaos drills' bookkeeping: verdicts, doubles, probe latencies, the cluster URL and the command line."""

from __future__ import annotations

import argparse
from typing import Any
from unittest import mock

import testtools

from ha_guest.testing import chaos, chaos_checks, chaos_cluster, chaos_rig


class FakeRig:
    """Events and nothing else, as a Rig's listener holds them."""

    def __init__(self, events: dict[str, list[tuple[float, dict[str, Any]]]]) -> None:
        self._events = events

    def events(self, event_type: str) -> list[tuple[float, dict[str, Any]]]:
        return list(self._events.get(event_type, []))

    def check(self) -> None:
        pass


class TestVerdict(testtools.TestCase):

    def test_figures_and_failures(self) -> None:
        verdict = chaos_checks.Verdict()
        verdict.at_most('p99_ms', 120.0, 300.0, ' ms')
        verdict.at_most('late_s', 2.5, 1.5, ' s')
        verdict.at_most('missing', None, 1.0)
        verdict.equal('duplicates', 0, 0)
        verdict.equal('lost', 2, 0)
        self.assertEqual({'p99_ms': 120.0, 'late_s': 2.5, 'missing': None, 'duplicates': 0, 'lost': 2},
                         verdict.figures)
        self.assertEqual(['late_s = 2.5 s, target <= 1.5 s', 'missing = None, target <= 1.0',
                          'lost = 2, expected 0'], verdict.failures)

    def test_missed_targets_reported_unless_enforced(self) -> None:
        verdict = chaos_checks.Verdict(enforce_targets=False)
        verdict.at_most('late_s', 2.5, 1.5, ' s')
        verdict.at_most('missing', None, 1.0)  # nothing measured: something was lost, always a failure
        self.assertEqual(['missing = None, target <= 1.0'], verdict.failures)
        self.assertEqual(['late_s = 2.5 s, target <= 1.5 s'], verdict.targets_missed)


class TestEvents(testtools.TestCase):

    def test_duplicates_counts_doubles_only(self) -> None:
        events = [(1.0, {'instance_uuid': 'a', 'incident_id': '1'}), (2.0, {'instance_uuid': 'b', 'incident_id': '2'}),
                  (3.0, {'instance_uuid': 'a', 'incident_id': '3'})]
        self.assertEqual({'a': 2}, chaos_checks.duplicates(events))
        self.assertEqual({}, chaos_checks.duplicates(events, 'incident_id'))

    def test_wait_events_first_after_since(self) -> None:
        events = [(1.0, {'instance_uuid': 'a', 'n': 0}), (5.0, {'instance_uuid': 'a', 'n': 1}),
                  (6.0, {'instance_uuid': 'b', 'n': 2}), (7.0, {'instance_uuid': 'a', 'n': 3})]
        rig = FakeRig({chaos_rig.RAISED: events})
        found = chaos_checks.wait_events(rig, chaos_rig.RAISED, ['a', 'b'], 2.0, 0.0)
        self.assertEqual({'a': 1, 'b': 2}, {k: p['n'] for k, (_, p) in found.items()})

    def test_wait_events_gives_up_without_error(self) -> None:
        rig = FakeRig({})
        self.assertEqual({}, chaos_checks.wait_events(rig, chaos_rig.RAISED, ['a'], 0.0, 0.1))


class TestProber(testtools.TestCase):

    def test_latency_is_first_raised_after_the_hang(self) -> None:
        rig = FakeRig({chaos_rig.RAISED: [(10.3, {'instance_uuid': 'a'}), (20.4, {'instance_uuid': 'a'}),
                                          (10.9, {'instance_uuid': 'b'})]})
        prober = chaos_cluster.Prober(rig, ['a', 'b'])  # type: ignore[arg-type]
        prober.probes = [(10.0, 'a'), (10.5, 'b'), (20.0, 'a'), (30.0, 'b')]
        latencies = prober.latencies()
        self.assertEqual([10.0, 10.5, 20.0, 30.0], [at for at, _ in latencies])
        self.assertEqual([0.3, 0.4, 0.4], [round(lat or 0.0, 3) for _, lat in latencies[:3]])
        self.assertIsNone(latencies[3][1])  # lost
        self.assertEqual([0.3, 0.4], [round(x or 0.0, 3) for x in chaos_cluster._window(latencies, 10.0, 20.0)])


class TestCluster(testtools.TestCase):

    def test_vhost_url_orders_the_nodes(self) -> None:
        cluster = chaos_cluster.Cluster(chaos.__file__)
        url = 'rabbit://guest:guest@127.0.0.1:5701,guest:guest@127.0.0.1:5702,guest:guest@127.0.0.1:5703/v1'
        with mock.patch.object(cluster, 'run', return_value=url) as run:
            self.assertEqual(url, cluster.vhost_url('v1'))
            self.assertEqual('rabbit://guest:guest@127.0.0.1:5703/v1', cluster.vhost_url('v1', (3,)))
        run.assert_called_with('vhost', 'v1')

    def test_leader_of_a_queue(self) -> None:
        cluster = chaos_cluster.Cluster(chaos.__file__)
        listing = 'topic_x\tquorum\trmq2@localhost\ntopic_x.host\tquorum\trmq3@localhost\nfan\tstream\t\n'
        with mock.patch.object(cluster, 'run', return_value=listing) as run:
            self.assertEqual(2, cluster.leader('v1', 'topic_x', 3))
            self.assertEqual(3, cluster.leader('v1', 'topic_x.host', 3))
            self.assertIsNone(cluster.leader('v1', 'missing', 3))
        run.assert_called_with('queues', 'v1', '3')

    def test_missing_script_fails_clearly(self) -> None:
        error = self.assertRaises(chaos_rig.ChaosError, chaos_cluster.Cluster, '/nonexistent/rabbitmq-cluster.sh')
        self.assertIn('not found', str(error))


class TestCommandLine(testtools.TestCase):

    def test_defaults_run_every_scenario(self) -> None:
        args = chaos.parse_args([])
        self.assertEqual([], args.scenarios)
        self.assertEqual([500, 1000], args.storm_sizes)
        self.assertEqual('.chaos/results.json', args.json)
        self.assertFalse(args.enforce_targets)
        self.assertEqual(['storm', 'broker_outage', 'controller_kill', 'two_controllers', 'compute_kill',
                          'dead_agent', 'cluster'], list(chaos.SCENARIOS))

    def test_unknown_scenario_is_refused(self) -> None:
        with mock.patch('sys.stderr'):
            self.assertRaises(SystemExit, chaos.parse_args, ['nonsense'])

    def test_a_broken_scenario_fails_with_its_reason(self) -> None:
        def broken(drill: Any) -> None:
            drill.verdict.figures['measured'] = 1
            raise chaos_rig.ChaosError('the broker went away')

        args = argparse.Namespace(transport_url='rabbit://guest:guest@127.0.0.1:5672/', enforce_targets=True)
        with mock.patch.dict(chaos.SCENARIOS, {'broken': broken}), mock.patch('sys.stderr'):
            result = chaos.run_scenario('broken', args, self.useFixture(_TempDir()).path)
        self.assertFalse(result['passed'])
        self.assertEqual({'measured': 1}, result['figures'])
        self.assertEqual(['ChaosError: the broker went away'], result['failures'])

    def test_missed_target_is_reported_not_failed(self) -> None:
        def slow(drill: Any) -> None:
            drill.verdict.at_most('p99_ms', 900.0, 300.0, ' ms')

        args = argparse.Namespace(transport_url='rabbit://guest:guest@127.0.0.1:5672/', enforce_targets=False)
        with mock.patch.dict(chaos.SCENARIOS, {'slow': slow}), mock.patch('sys.stderr'):
            result = chaos.run_scenario('slow', args, self.useFixture(_TempDir()).path)
        self.assertTrue(result['passed'])
        self.assertEqual(['p99_ms = 900.0 ms, target <= 300.0 ms'], result['targets_missed'])
        with mock.patch('sys.stdout') as stdout:
            chaos.print_results({'slow': result}, args.transport_url)
        printed = ''.join(call.args[0] for call in stdout.write.call_args_list)
        self.assertIn('TARGET MISSED: p99_ms = 900.0 ms', printed)
        self.assertIn('chaos: 1 passed, 0 failed', printed)


def _TempDir() -> Any:  # noqa: N802 - a fixture factory
    import fixtures

    return fixtures.TempDir()
