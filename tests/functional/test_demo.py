"""ha-guest-demo without Vitrage (this environment has none; tests/vitrage runs it whole)."""

from __future__ import annotations

import os
import subprocess
import sys

import testtools

TIMEOUT = 90


class TestDemoWithoutVitrage(testtools.TestCase):

    def run_demo(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, '-m', 'ha_guest.demo', *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=TIMEOUT,
                              env=dict(os.environ, PYTHONUNBUFFERED='1'))
        self.addDetail('stdout', testtools.content.text_content(proc.stdout))
        self.addDetail('stderr', testtools.content.text_content(proc.stderr))
        return proc

    def test_story_passes(self) -> None:
        proc = self.run_demo('--no-vitrage')
        self.assertEqual(0, proc.returncode, proc.stderr[-3000:])
        for line in ('guest-2: ha-guest-agent frozen with SIGSTOP', 'compute agent: guest-2 FAULT missed',
                     'compute agent: guest-3 FAULT unhealthy', 'fault cleared (recovered)',
                     'guest-4: ha-guest-agent got SIGTERM, sent exit and ended with status 0',
                     'no fault at the controller', 'demo passed'):
            self.assertIn(line, proc.stdout)
        # The server group messaging scene, across two compute agents.
        for line in ("db-standby heard it: sender 3b0e6d2a-7c41-4f8e-9a15-d2c4e6f80a11",
                     "payload 'I am taking over'",
                     'db-standby learned it through its channel: member db-active, instance.power_off.end, '
                     'state stopped, power state shutdown'):
            self.assertIn(line, proc.stdout)
        self.assertRegex(proc.stdout, r'3b0e6d2a-7c41-4f8e-9a15-d2c4e6f80a11 +stopped +shutdown')
        self.assertRegex(proc.stdout, r'8f2a4c6e-1d3b-4a5f-b7c9-e0f1a2b3c412 +active +running +\(self\)')

    def test_bad_option_is_a_usage_error(self) -> None:
        proc = self.run_demo('--interval-ms', '50')
        self.assertEqual(2, proc.returncode)
        self.assertIn('--interval-ms must be at least 100', proc.stderr)
