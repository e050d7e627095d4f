"""`tox -e demo`'s program, run as the README says, in an environment with Vitrage (this one)."""

from __future__ import annotations

import os
import subprocess
import sys

import testtools

#: The demo takes about 10 s; far less than this even on a busy machine.
TIMEOUT = 90


class TestDemo(testtools.TestCase):

    def run_demo(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        proc = subprocess.run([sys.executable, '-m', 'ha_guest.demo', *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=TIMEOUT, env=env)
        self.addDetail('stdout', testtools.content.text_content(proc.stdout))
        self.addDetail('stderr', testtools.content.text_content(proc.stderr))
        return proc

    def test_embedded_demo_passes(self) -> None:
        proc = self.run_demo()
        self.assertEqual(0, proc.returncode, proc.stderr[-3000:])
        out = proc.stdout
        for line in ('vitrage: alarm "Guest heartbeat missed" (CRITICAL) on instance guest-2',
                     'vitrage: alarm "Guest unhealthy" (SEVERE) on instance guest-3',
                     'vitrage: template -> instance guest-2 ERROR, marked down, alarm "Instance unavailable"',
                     'vitrage: alarms gone, instance guest-2 ACTIVE again',
                     'vitrage: alarms gone, instance guest-3 ACTIVE again',
                     'no fault at the controller', 'demo passed'):
            self.assertIn(line, out)
        # Every temporary folder is gone.
        self.assertNotIn('logs kept', out)
