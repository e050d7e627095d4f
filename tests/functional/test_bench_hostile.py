"""The hostile benchmark, small, on the shared RabbitMQ: it runs to the end and no hostile guest fools it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import fixtures
import testtools

TIMEOUT = 90
FIELDS = ('baseline_agent_cpu_percent', 'attack_agent_cpu_percent', 'detection_p99_ms', 'false_alarms',
          'flap_incidents_per_min', 'unreported_hangs')


class TestHostileBenchSmall(testtools.TestCase):

    def test_every_kind_runs_and_hides_nothing(self) -> None:
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'hostile.json')
        # 20 healthy guests and one hostile guest of each kind; 4 healthy hangs under a short attack.
        proc = subprocess.run(
            [sys.executable, '-m', 'ha_guest.testing.bench', '--hostile', '--guests', '20', '--warmup-s', '1',
             '--steady-s', '2', '--settle-s', '1', '--quiet-s', '1', '--hang', '4', '--hang-window-s', '2',
             '--after-s', '1', '--json', path],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
            env=dict(os.environ, PYTHONUNBUFFERED='1'))
        self.addDetail('stdout', testtools.content.text_content(proc.stdout))
        self.addDetail('stderr', testtools.content.text_content(proc.stderr[-5000:]))
        self.assertEqual(0, proc.returncode, proc.stderr[-3000:])
        with open(path, encoding='utf-8') as handle:
            result = json.load(handle)
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
