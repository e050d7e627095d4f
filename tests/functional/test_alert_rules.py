"""The alert rules of etc/prometheus, checked by Prometheus' own promtool: syntax and their unit tests."""

from __future__ import annotations

import os
import shutil
import subprocess

import fixtures
import testtools

RULES_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'etc', 'prometheus')
TIMEOUT_S = 60


class TestAlertRules(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.promtool = shutil.which('promtool')
        if self.promtool is None:
            self.fail('promtool is missing: tools/ensure-promtool.sh installs it (Debian package prometheus)')

    def promtool_run(self, *args: str) -> subprocess.CompletedProcess:
        """Run promtool in the rules' folder (the test file names the rules file relative to it)."""
        return subprocess.run([str(self.promtool), *args], cwd=RULES_DIR, capture_output=True, text=True,
                              timeout=TIMEOUT_S)

    def test_check_rules(self) -> None:
        done = self.promtool_run('check', 'rules', 'ha-guest-alerts.yaml')
        self.assertEqual(0, done.returncode, done.stdout + done.stderr)
        self.assertIn('SUCCESS: 7 rules found', done.stdout)

    def test_unit_tests_of_the_rules(self) -> None:
        # Each alert fires on the series it is for, after its "for", and not on a healthy host.
        done = self.promtool_run('test', 'rules', 'ha-guest-alerts.test.yaml')
        self.assertEqual(0, done.returncode, done.stdout + done.stderr)
        self.assertIn('SUCCESS', done.stdout)

    def test_a_broken_threshold_fails_the_unit_tests(self) -> None:
        # The unit tests can fail: with the latency threshold at 500 ms the late host no longer alerts.
        folder = self.useFixture(fixtures.TempDir()).path
        for name in ('ha-guest-alerts.yaml', 'ha-guest-alerts.test.yaml'):
            shutil.copy(os.path.join(RULES_DIR, name), folder)
        rules = os.path.join(folder, 'ha-guest-alerts.yaml')
        with open(rules, encoding='utf-8') as handle:
            text = handle.read()
        self.assertIn('> 0.05\n', text)
        with open(rules, 'w', encoding='utf-8') as handle:
            handle.write(text.replace('> 0.05\n', '> 0.5\n'))
        done = subprocess.run([str(self.promtool), 'test', 'rules', 'ha-guest-alerts.test.yaml'], cwd=folder,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        self.assertNotEqual(0, done.returncode, done.stdout)
        self.assertIn('HAGuestAnswersLate', done.stdout + done.stderr)

