"""Checks that the packaging metadata, README and CI script agree with the code."""

from __future__ import annotations

import configparser
import importlib
import pathlib
import re

import testtools

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _console_scripts() -> list[tuple[str, str, str]]:
    """Return (script, module, function) for every console_scripts entry point."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO_ROOT / 'setup.cfg', encoding='utf-8')
    scripts = []
    for line in cfg.get('entry_points', 'console_scripts').splitlines():
        if not line.strip():
            continue
        name, _, target = (part.strip() for part in line.partition('='))
        module, _, function = target.partition(':')
        scripts.append((name, module.strip(), function.strip()))
    return scripts


def _readme_command(heading: str) -> str:
    """Return the first command of the README literal block after ``heading``."""
    text = (REPO_ROOT / 'README.rst').read_text(encoding='utf-8')
    match = re.search(re.escape(heading) + r'.*?::\n\n[ \t]+(\S[^\n]*)', text, re.S)
    if match is None:
        raise AssertionError('README.rst has no command after %r' % heading)
    return match.group(1).strip()


class TestEntryPoints(testtools.TestCase):
    """Every console script in setup.cfg points at a callable that exists."""

    def test_console_scripts_declared(self) -> None:
        names = {name for name, _, _ in _console_scripts()}
        self.assertEqual(
            {'ha-guest-agent', 'ha-guest-client', 'ha-guest-channel-emulator', 'ha-guest-demo',
             'ha-guest-compute', 'ha-guest-controller', 'ha-guest-status'},
            names,
        )

    def test_every_entry_point_loads(self) -> None:
        # Targets that need another project's code are loaded by that env's
        # tests (tox -e nova, vitrage, libvirt, tempest); everything else loads here.
        elsewhere = ('ha_guest.nova', 'ha_guest.vitrage', 'ha_guest.compute.discovery.libvirt',
                     'ha_guest.tempest.plugin')
        cfg = configparser.ConfigParser()
        cfg.read(REPO_ROOT / 'setup.cfg', encoding='utf-8')
        problems = []
        loaded = 0
        for group, value in cfg.items('entry_points'):
            for line in filter(None, (entry.strip() for entry in value.splitlines())):
                name, _, target = (part.strip() for part in line.partition('='))
                module, _, attr = target.partition(':')
                if module.startswith(elsewhere):
                    continue
                try:
                    obj = importlib.import_module(module)
                    for part in filter(None, attr.split('.')):
                        obj = getattr(obj, part)
                    loaded += 1
                except (ImportError, AttributeError) as exc:
                    problems.append('%s: %s = %s: %r' % (group, name, target, exc))
        self.assertEqual([], problems)
        self.assertGreater(loaded, 10)

    def test_console_scripts_importable(self) -> None:
        problems = []
        for name, module, function in _console_scripts():
            try:
                target = getattr(importlib.import_module(module), function)
            except (ImportError, AttributeError) as exc:
                problems.append('%s = %s:%s: %r' % (name, module, function, exc))
                continue
            if not callable(target):
                problems.append('%s = %s:%s is not callable' % (name, module, function))
        self.assertEqual([], problems)


class TestQuickStart(testtools.TestCase):
    """The README's commands are the ones CI and tox really run."""

    def test_ci_runs_readme_test_command(self) -> None:
        command = _readme_command('Run the tests')
        self.assertEqual('python3 -m pip install tox && python3 -m tox', command)
        ci_lines = [
            line.strip()
            for line in (REPO_ROOT / '.ci' / 'run').read_text(encoding='utf-8').splitlines()
            if not line.lstrip().startswith('#')
        ]
        self.assertIn(command, ci_lines)

    def test_readme_tox_envs_exist(self) -> None:
        tox = configparser.ConfigParser(interpolation=None)
        tox.read(REPO_ROOT / 'tox.ini', encoding='utf-8')
        readme = (REPO_ROOT / 'README.rst').read_text(encoding='utf-8')
        for env in re.findall(r'tox -e ([\w-]+)', readme):
            self.assertTrue(tox.has_section('testenv:%s' % env), env)
