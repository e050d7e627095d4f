"""The benchmark's --metrics, small, on the shared RabbitMQ: the agent measured without and with its metrics."""

from __future__ import annotations

from tests.functional.bench_run import BenchTestCase


class TestBenchMetricsSmall(BenchTestCase):

    def test_without_then_with_metrics(self) -> None:
        proc, result = self.run_bench('--guests', '20', '--metrics', '--warmup-s', '1', '--steady-s', '3',
                                      '--scrape-s', '1', '--hang', '3', '--hang-window-s', '1')
        for name in ('agent_cpu_percent', 'agent_cpu_percent_metrics', 'agent_cpu_metrics_delta_points'):
            self.assertIsInstance(result[name], float, name)
        self.assertGreaterEqual(result['scrapes'], 3)  # one a second over 3 s, and the last one
        self.assertEqual(0, result['scrape_failures'])
        self.assertGreater(result['scrape_bytes'], 1000)
        self.assertGreater(result['answers_per_s_metrics'], 100)  # the restarted agent has every guest again
        self.assertEqual((3, 3, 0), (result['samples'], result['detected'], result['false_alarms']))
        self.assertIn('with its metrics scraped', proc.stdout)

    def test_rounds_alternate_restarted_windows(self) -> None:
        proc, result = self.run_bench('--guests', '20', '--metrics', '--metrics-rounds', '2', '--warmup-s', '1',
                                      '--steady-s', '2', '--scrape-s', '1', '--hang', '2', '--hang-window-s', '1')
        windows = result['metrics_windows']
        # the first window (no restart, no metrics), then with, without, with: each after a restart
        self.assertEqual([(False, False), (True, True), (False, True), (True, True)],
                         [(w['metrics'], w['restarted']) for w in windows])
        for window in windows:
            self.assertGreater(window['cpu_us_per_answer'], 0.0)
        self.assertEqual([round(windows[3]['cpu_percent'] - windows[2]['cpu_percent'], 1)],
                         result['agent_cpu_metrics_paired_delta_points'])
        self.assertGreaterEqual(result['scrapes'], 5)  # two windows of 2 s, a scrape a second, and the last one
        self.assertEqual(0, result['scrape_failures'])
        self.assertEqual((2, 2, 0), (result['samples'], result['detected'], result['false_alarms']))
        self.assertIn('on minus off, in turns', proc.stdout)
