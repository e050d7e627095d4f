"""The ha-guest-status command line: commands, config loading, clean failures."""

from __future__ import annotations

import io
import os

import fixtures
import testtools
from oslo_config import cfg

from ha_guest.status import app, context
from ha_guest.status.errors import EXIT_BROKER, StatusError


class TestApp(testtools.TestCase):

    def run_app(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status_app = app.StatusApp()
        status_app.stdout, status_app.stderr = out, err
        code = status_app.run(list(argv))
        return code, out.getvalue(), err.getvalue()

    def test_every_command_is_there(self) -> None:
        manager = app.StatusApp().command_manager
        names = {name for name, _ in manager}
        self.assertTrue({'fault list', 'host list', 'instance list', 'instance show', 'upgrade check'} <= names)

    def test_a_missing_config_file_is_one_clear_line(self) -> None:
        tmp = self.useFixture(fixtures.TempDir()).path
        code, _, err = self.run_app('--config-file', os.path.join(tmp, 'none.conf'), 'fault', 'list')
        self.assertEqual(1, code)
        self.assertIn('ERROR: config file %s not found' % os.path.join(tmp, 'none.conf'), err)
        self.assertNotIn('Traceback', err)

    def test_an_unreachable_broker_has_its_exit_status(self) -> None:
        tmp = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(tmp, 'ha_guest.conf')
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write('[DEFAULT]\ntransport_url = rabbit://u:secret@127.0.0.1:1/\n')
        code, _, err = self.run_app('--config-file', path, 'host', 'list')
        self.assertEqual(EXIT_BROKER, code)
        self.assertIn('broker rabbit://u@127.0.0.1:1/: 127.0.0.1:1 unreachable', err)
        self.assertNotIn('secret', err)


class TestLoadConf(testtools.TestCase):

    def test_reads_the_services_options(self) -> None:
        tmp = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(tmp, 'ha_guest.conf')
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write('[rpc]\ncontroller_topic = mine\ncompute_version_cap = 1.1\n')
        conf = context.load_conf([path], [], cfg.ConfigOpts())
        self.assertEqual(('mine', '1.1', 'ha_guest'),
                         (conf.rpc.controller_topic, conf.rpc.compute_version_cap, conf.control_exchange))

    def test_a_bad_value_is_a_status_error(self) -> None:
        tmp = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(tmp, 'ha_guest.conf')
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write('[rpc]\ncall_timeout_s = soon\n')
        error = self.assertRaises(StatusError, context.load_conf, [path], [], cfg.ConfigOpts())
        self.assertIn('call_timeout_s', str(error))
