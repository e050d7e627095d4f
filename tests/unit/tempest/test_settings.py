"""The plugin's options and the settings both writers use, without tempest installed."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import testtools

from ha_guest.tempest import config, settings

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]


class TestSettings(testtools.TestCase):
    """What devstack's test-config and the cloud runner write are options the plugin registers."""

    def test_every_written_option_exists(self) -> None:
        written = settings.tempest_options(image_ref='img', guest_control='serial_pty', recovery=False,
                                           vitrage=True)
        ours = {opt.name: opt for opt in config.opts}
        self.assertEqual({'ha_guest', 'service_available'}, set(written))
        self.assertEqual({'ha_guest': 'True'}, written['service_available'])
        for name, value in written['ha_guest'].items():
            self.assertIn(name, ours)
            # Each value parses as its option's type (a choice must be one of the choices).
            ours[name].type(value)
        self.assertEqual('img', written['ha_guest']['image_ref'])
        self.assertEqual('False', written['ha_guest']['recovery'])

    def test_no_image_leaves_default(self) -> None:
        self.assertNotIn('image_ref', settings.tempest_options()['ha_guest'])

    def test_cli_lines_for_iniset(self) -> None:
        proc = subprocess.run([sys.executable, '-m', 'ha_guest.tempest.settings', '--image-ref', 'abc',
                               '--guest-control', 'serial_pty', '--vitrage', 'yes'],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(0, proc.returncode, proc.stderr)
        lines = proc.stdout.splitlines()
        self.assertIn('service_available ha_guest True', lines)
        self.assertIn('ha_guest image_ref abc', lines)
        self.assertIn('ha_guest vitrage True', lines)
        self.assertTrue(all(len(line.split(' ', 2)) == 3 for line in lines), lines)

    def test_cli_refuses_unknown_control(self) -> None:
        proc = subprocess.run([sys.executable, '-m', 'ha_guest.tempest.settings', '--guest-control', 'ssh'],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(2, proc.returncode)

    def test_config_help_texts(self) -> None:
        for opt in config.opts + [config.service_option]:
            self.assertTrue(opt.help, opt.name)


class TestTempestRoom(testtools.TestCase):
    """Only ha_guest/tempest imports tempest, and only its plugin and tests do."""

    def test_tempest_imported_only_in_its_room(self) -> None:
        pattern = re.compile(r'^\s*(import tempest\b|from tempest\b)', re.M)
        outside = []
        inside = set()
        for path in (REPO_ROOT / 'ha_guest').rglob('*.py'):
            if not pattern.search(path.read_text(encoding='utf-8')):
                continue
            relative = path.relative_to(REPO_ROOT).as_posix()
            if relative.startswith('ha_guest/tempest/'):
                inside.add(relative)
            else:
                outside.append(relative)
        self.assertEqual([], outside)
        # config and settings stay importable without tempest (devstack, the cloud runner, this test).
        self.assertNotIn('ha_guest/tempest/config.py', inside)
        self.assertNotIn('ha_guest/tempest/settings.py', inside)
        self.assertIn('ha_guest/tempest/plugin.py', inside)

    def test_runner_imports_without_tempest(self) -> None:
        proc = subprocess.run(
            [sys.executable, '-c', 'import sys; sys.modules["tempest"] = None; '
             'import ha_guest.testing.tempest_run, ha_guest.tempest.config, ha_guest.tempest.settings'],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(0, proc.returncode, proc.stderr)
