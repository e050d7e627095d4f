"""The SGM benchmark, small, on the shared RabbitMQ: it runs to the end and its figures hang together."""

from __future__ import annotations

from tests.functional.bench_run import BenchTestCase


class TestSgmBenchSmall(BenchTestCase):

    def test_one_group_runs_to_the_end(self) -> None:
        # One group of 16 on four compute agents, a light sustained load (32 broadcasts/s) for 3 s.
        proc, result = self.run_bench('--sgm', '--groups', '1', '--rate', '2', '--load-s', '3', '--samples', '20',
                                      '--notify-samples', '10')
        self.assertEqual(16, result['status_ok'])
        self.assertEqual((20, 0), (result['broadcast_samples'], result['broadcast_incomplete']))
        self.assertEqual((10, 0), (result['notify_samples'], result['notify_incomplete']))
        self.assertEqual(96, result['broadcasts_offered'])
        self.assertEqual(0, result['broadcasts_lost'])
        self.assertEqual(0, result['self_deliveries'] + result['misattributed'] + result['over_delivered'])
        self.assertEqual({}, result['nacks'])
        for name in ('broadcast_p50_ms', 'broadcast_p99_ms', 'broadcasts_per_s', 'notify_p50_ms', 'notify_p99_ms'):
            self.assertIsInstance(result[name], float, name)
        self.assertIn('server group messaging benchmark', proc.stdout)
