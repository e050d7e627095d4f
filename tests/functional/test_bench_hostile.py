"""The hostile benchmark, small, on the shared RabbitMQ: it runs to the end and no hostile guest fools it."""

from __future__ import annotations

from tests.functional.bench_run import BenchTestCase

FIELDS = ('baseline_agent_cpu_percent', 'attack_agent_cpu_percent', 'detection_p99_ms', 'false_alarms',
          'flap_incidents_per_min', 'unreported_hangs')


class TestHostileBenchSmall(BenchTestCase):

    def test_every_kind_runs_and_hides_nothing(self) -> None:
        # 20 healthy guests and one hostile guest of each kind; 4 healthy hangs under a short attack.
        proc, result = self.run_bench('--hostile', '--guests', '20', '--warmup-s', '1', '--steady-s', '2',
                                      '--settle-s', '1', '--quiet-s', '1', '--hang', '4', '--hang-window-s', '2',
                                      '--after-s', '1')
        for name in FIELDS:
            self.assertIsInstance(result[name], (int, float), name)
        # Functional checks only (timing lives in the figures): no false alarm, every hang detected.
        self.assertEqual(0, result['false_alarms'], result['false_alarm_instances'])
        self.assertEqual((4, 4), (result['samples'], result['detected']))
        self.assertEqual(0, result['unreported_hangs'], result['hostile_hangs'])
        self.assertEqual(14, len(result['hostile_hangs']))
        # The hello_ack replayer kept its registration: healthy through the attack, reported when it hung.
        self.assertNotIn('hello_ack', result['hostile_faults_during_attack'])
        self.assertTrue(result['hostile_hangs']['hello_ack'].startswith('reported after'))
        self.assertIn('hostile benchmark', proc.stdout)
