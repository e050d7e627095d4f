"""The plugin as tempest 47 loads it: entry point, options, tests (tox -e tempest; needs no cloud)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unittest

import testtools
from oslo_config import cfg

from ha_guest.tempest import config as plugin_config
from ha_guest.tempest import plugin as plugin_module

#: Every test the plugin ships, by class and method.
EXPECTED_TESTS = {
    'ExtraSpecsTest.test_valid_specs_accepted',
    'ExtraSpecsTest.test_invalid_specs_refused',
    'ExtraSpecsTest.test_invalid_update_keeps_value',
    'HeartbeatScenarioTest.test_agent_registers',
    'HeartbeatScenarioTest.test_hung_agent_rebooted',
    'HeartbeatScenarioTest.test_hung_agent_vitrage_alarm',
    'HeartbeatScenarioTest.test_clean_exit_raises_nothing',
}


def _tempest() -> str:
    return os.path.join(os.path.dirname(sys.executable), 'tempest')


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run code in this venv's Python, from / (so only installed metadata counts); fail on errors."""
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, cwd='/')
    if proc.returncode != 0:
        raise AssertionError(proc.stdout + proc.stderr)
    return proc


class TestPluginLoads(testtools.TestCase):
    """tempest's own plugin manager finds and uses our plugin."""

    def test_plugin_manager_finds_it(self) -> None:
        # A fresh interpreter outside the source tree: a stale ha_guest.egg-info in the
        # working directory would otherwise hide the installed entry points.
        proc = _python(
            'from tempest.test_discover import plugins; '
            'found = {ext.name: type(ext.obj).__module__ + ":" + type(ext.obj).__name__ '
            'for ext in plugins.TempestTestPluginManager().ext_plugins}; print(found["ha_guest"])')
        self.assertEqual('ha_guest.tempest.plugin:HAGuestTempestPlugin', proc.stdout.strip())

    def test_register_opts(self) -> None:
        conf = cfg.ConfigOpts()
        plugin_module.HAGuestTempestPlugin().register_opts(conf)
        conf([], project='tempest')
        self.assertFalse(conf.service_available.ha_guest)
        self.assertEqual('none', conf.ha_guest.guest_control)
        self.assertEqual('qemu:///system', conf.ha_guest.libvirt_uri)
        self.assertTrue(conf.ha_guest.recovery)
        self.assertFalse(conf.ha_guest.vitrage)
        conf.set_override('guest_control', 'serial_pty', group='ha_guest')
        self.assertEqual('serial_pty', conf.ha_guest.guest_control)
        self.assertRaises(ValueError, conf.set_override, 'guest_control', 'ssh', group='ha_guest')

    def test_opt_lists_in_tempest_sample(self) -> None:
        proc = _python(
            'import json; from tempest import config; groups = {}\n'
            'for group, opts in config.list_opts():\n'
            '    groups.setdefault(getattr(group, "name", group), []).extend(opt.name for opt in opts)\n'
            'print(json.dumps({name: groups[name] for name in ("ha_guest", "service_available")}))')
        groups = json.loads(proc.stdout)
        self.assertEqual({opt.name for opt in plugin_config.opts}, set(groups['ha_guest']))
        self.assertIn('ha_guest', groups['service_available'])

    def test_load_tests_finds_every_test(self) -> None:
        start, top = plugin_module.HAGuestTempestPlugin().load_tests()
        suite = unittest.defaultTestLoader.discover(start, top_level_dir=top)
        names = set()

        def walk(tests: unittest.TestSuite) -> None:
            for test in tests:
                if isinstance(test, unittest.TestSuite):
                    walk(test)
                else:
                    self.assertNotIsInstance(test, unittest.loader._FailedTest, str(test))  # type: ignore[attr-defined]
                    names.add(test.id())

        walk(suite)
        short = {'.'.join(name.split('[')[0].split('.')[-2:]) for name in names}
        self.assertEqual(EXPECTED_TESTS, short)
        self.assertTrue(all(name.startswith('ha_guest.tempest.tests.') for name in names), names)

    def test_list_plugins_cli(self) -> None:
        proc = subprocess.run([_tempest(), 'list-plugins'], capture_output=True, text=True, timeout=120)
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertIn('ha_guest.tempest.plugin:HAGuestTempestPlugin', proc.stdout)


class TestWorkspace(testtools.TestCase):
    """The runner's workspace: ``tempest run`` there lists exactly the plugin's tests, none of tempest's."""

    def test_run_lists_plugin_tests(self) -> None:
        from ha_guest.testing import tempest_run

        workspace = self.useFixture(_TempDir()).path
        cloud = tempest_run.Cloud(auth_url='http://127.0.0.1:9/identity', password='unused', image_ref='img',
                                  guest_control='serial_pty')
        conf_path = tempest_run.prepare(cloud, workspace)
        parsed = cfg.ConfigParser(conf_path, {})
        parsed.parse()
        self.assertEqual(['http://127.0.0.1:9/identity/v3'], parsed.sections['identity']['uri_v3'])
        self.assertEqual(['True'], parsed.sections['service_available']['ha_guest'])
        self.assertEqual(['serial_pty'], parsed.sections['ha_guest']['guest_control'])
        proc = subprocess.run([_tempest(), 'run', '--list-tests', '--regex', tempest_run.REGEX], cwd=workspace,
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        listed = [line for line in proc.stdout.splitlines() if line.startswith('ha_guest.')]
        self.assertEqual(len(EXPECTED_TESTS), len(listed), proc.stdout)


class _TempDir:
    """A fixtures.TempDir without importing fixtures at module level."""

    def __new__(cls) -> object:
        import fixtures

        return fixtures.TempDir()
