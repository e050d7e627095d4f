"""ha-guest-controller's main(): options, version, refusal to start without its sinks."""

from __future__ import annotations

import os
import subprocess
import sys

import fixtures
import testtools


class TestMain(testtools.TestCase):

    def run_controller(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, '-m', 'ha_guest.cmd.controller', *args], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)

    def test_unknown_sink_exits_1(self) -> None:
        config = os.path.join(self.useFixture(fixtures.TempDir()).path, 'c.conf')
        with open(config, 'w', encoding='utf-8') as handle:
            handle.write('[DEFAULT]\ntransport_url = fake:/\n[controller]\nfault_sinks = log,nosuchsink\n')
        proc = self.run_controller('--config-file', config)
        output = proc.stdout + proc.stderr  # oslo.log writes to stdout unless use_stderr is set
        self.assertEqual(1, proc.returncode, output)
        self.assertIn('fault sink(s) nosuchsink not found in entry point namespace ha_guest.fault_sinks', output)

    def test_version(self) -> None:
        proc = self.run_controller('--version')
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertTrue((proc.stdout + proc.stderr).strip())
