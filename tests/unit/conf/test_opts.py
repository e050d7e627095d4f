"""Every option of ha_guest.conf is registered, listed by opts.list_opts and in the sample config."""

from __future__ import annotations

import configparser
import importlib
import os
import pathlib
import pkgutil
import re
from importlib.metadata import entry_points

import fixtures
import testtools
from oslo_config import cfg, generator

import ha_guest.conf
from ha_guest.conf import opts
from ha_guest.conf import recovery as recovery_conf

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
GENERATOR_CONF = REPO_ROOT / 'etc' / 'ha_guest' / 'ha_guest-config-generator.conf'


def _option_modules() -> list[str]:
    return sorted(name for _, name, _ in pkgutil.iter_modules(ha_guest.conf.__path__) if name != 'opts')


def _declared() -> set[tuple[str, str]]:
    """Return (group, option) for every Opt a conf module lists, found by walking the package."""
    found = set()
    for name in _option_modules():
        module = importlib.import_module('ha_guest.conf.%s' % name)
        for group, options in opts._items(module.list_opts()):
            for opt in options:
                found.add((opts._name(group), opt.dest))
        # Options a module defines but forgot to list would be missed above: look at its globals too.
        listed = {opt.dest for _, options in opts._items(module.list_opts()) for opt in options}
        for value in vars(module).values():
            if isinstance(value, list) and value and all(isinstance(o, cfg.Opt) for o in value):
                for opt in value:
                    if opt.dest not in listed:
                        found.add(('<unlisted in %s>' % name, opt.dest))
    return found


def _listed() -> set[tuple[str, str]]:
    return {(opts._name(group), opt.dest) for group, options in opts.list_opts() for opt in options}


class TestListOpts(testtools.TestCase):

    def test_every_module_is_walked(self) -> None:
        self.assertEqual(_option_modules(), sorted(m.__name__.rsplit('.', 1)[1] for m in opts.MODULES))

    def test_every_option_is_listed(self) -> None:
        self.assertEqual(set(), _declared() - _listed())
        self.assertEqual(set(), _listed() - _declared())

    def test_groups(self) -> None:
        groups = [opts._name(group) for group, _ in opts.list_opts()]
        self.assertEqual('DEFAULT', groups[0])
        self.assertEqual(len(groups), len(set(groups)))
        for group in ('compute', 'controller', 'rpc', 'sink_notifications', 'sink_vitrage', 'recovery', 'nova_api'):
            self.assertIn(group, groups)

    def test_entry_point(self) -> None:
        (entry_point,) = entry_points(group='oslo.config.opts').select(name='ha_guest')
        self.assertIs(opts.list_opts, entry_point.load())


class TestRegisterAll(testtools.TestCase):

    def test_defaults(self) -> None:
        conf = cfg.ConfigOpts()
        ha_guest.conf.register_all(conf)
        ha_guest.conf.register_all(conf)  # idempotent
        conf([], default_config_files=[], default_config_dirs=[])
        self.assertEqual(['log', 'notifications', 'vitrage'], conf.controller.fault_sinks)
        self.assertTrue(conf.controller.resync_on_start)
        self.assertEqual('ha_guest_controller', conf.rpc.controller_topic)
        self.assertEqual('ha_guest_compute', conf.rpc.compute_topic)
        self.assertEqual(10, conf.rpc.call_timeout_s)
        self.assertIsNone(conf.rpc.controller_version_cap)
        self.assertEqual(['ha_guest_notifications'], conf.sink_notifications.topics)
        self.assertEqual(['vitrage_notifications'], conf.sink_vitrage.topics)
        self.assertTrue(conf.host)
        # keystoneauth registers an auth plugin's options when it loads the plugin [nova_api] auth_type names
        # (auth_url is required by some: registering them up front would make every service need it).
        loaded_on_use = {(recovery_conf.NOVA_API_GROUP, opt.dest) for opt in recovery_conf.auth_plugin_opts()}
        for group, options in opts.list_opts():
            for opt in options:
                if (opts._name(group), opt.dest) in loaded_on_use:
                    continue
                # Every other listed option is readable once registered.
                section = conf if opts._name(group) == 'DEFAULT' else conf[opts._name(group)]
                getattr(section, opt.dest)


class TestSampleConfig(testtools.TestCase):
    """What `tox -e genconfig` runs, in process: every ha_guest option lands in its section."""

    def test_generator_config(self) -> None:
        parser = configparser.ConfigParser(strict=False)
        with open(GENERATOR_CONF, encoding='utf-8') as handle:
            text = handle.read()
        self.assertEqual(['ha_guest', 'oslo.messaging', 'oslo.log'], re.findall(r'^namespace = (\S+)$', text, re.M))
        parser.read_string(text)
        self.assertEqual('etc/ha_guest/ha_guest.conf.sample', parser.get('DEFAULT', 'output_file'))

    def test_sample_lists_every_option(self) -> None:
        out = os.path.join(self.useFixture(fixtures.TempDir()).path, 'ha_guest.conf.sample')
        conf = cfg.ConfigOpts()
        generator.register_cli_opts(conf)
        conf(['--config-file', str(GENERATOR_CONF), '--output-file', out])
        generator.generate(conf)
        with open(out, encoding='utf-8') as handle:
            sample = handle.read()
        sections = dict(re.findall(r'^\[(\w+)\]\n(.*?)(?=^\[|\Z)', sample, re.M | re.S))
        missing = [(group, name) for group, name in sorted(_listed())
                   if not re.search(r'^#%s = ' % re.escape(name), sections.get(group, ''), re.M)]
        self.assertEqual([], missing)
        self.assertIn('oslo_messaging_rabbit', sections)
        self.assertIn('transport_url', sections['DEFAULT'])
        self.assertIn('log_file', sections['DEFAULT'])
        # The host default depends on the machine; the sample shows a placeholder.
        self.assertIn('#host = <current_hostname>', sections['DEFAULT'])
