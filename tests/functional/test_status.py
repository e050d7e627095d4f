"""ha-guest-status against running services on RabbitMQ: every subcommand, every output format.

Real processes throughout: a controller, a compute agent (directory discovery)
with real guest agents on emulated channels, and ha-guest-status itself run
as the console script an operator runs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import yaml

from ha_guest.testing import wait_for
from tests.functional.chain import COMPUTE_HOST, COMPUTE_MODULE, CONTROLLER_HOST, RAISED, ChainTestCase
from tests.functional.rabbit import TIMEOUT, ControllerProcess, ServiceProcess

#: The console script beside this interpreter (pip install -e . puts it there).
STATUS = os.path.join(os.path.dirname(sys.executable), 'ha-guest-status')
#: Seconds a compute agent may be silent here (the controller adds the beat and two report intervals).
DOWN_TIME_S = 2.0
#: Nova's settings for server group messaging, on this test's topic and exchange.
NOVA_GOOD = """[DEFAULT]
control_exchange = %(exchange)s
[notifications]
notification_format = both
versioned_notifications_topics = %(topic)s
[oslo_messaging_notifications]
driver = log
driver = messagingv2
"""


def run_status(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ha-guest-status; its output and exit status."""
    if not os.path.exists(STATUS):
        raise AssertionError('%s is missing: install ha_guest into this environment (pip install -e .) so that '
                             'its console scripts exist' % STATUS)
    return subprocess.run([STATUS, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class StatusTestCase(ChainTestCase):
    """A chain whose compute agent reports every second and whose controller notices silence in seconds."""

    def start_controller(self) -> ControllerProcess:
        return self.useFixture(ControllerProcess(
            self.rabbit, CONTROLLER_HOST, self.tmp,
            controller={'fault_sinks': 'log,notifications', 'agent_down_time_s': DOWN_TIME_S,
                        'peer_beat_interval_s': 0.5},
            compute={'state_report_interval_s': 1}))

    def start_compute(self) -> ServiceProcess:
        config = self.rabbit.service_config(os.path.join(self.tmp, 'compute.conf'), COMPUTE_HOST, compute={
            'discovery_driver': 'directory', 'directory_path': self.host_dir, 'directory_poll_s': 0.1,
            'state_file': os.path.join(self.tmp, 'compute-state.json'), 'reconnect_min_s': 0.05,
            'reconnect_max_s': 0.5, 'state_report_interval_s': 1})
        return self.useFixture(ServiceProcess('compute', ['-m', COMPUTE_MODULE, '--config-file', config], self.tmp))

    def status(self, *args: str, fmt: str | None = None, config: str | None = None,
               expect: int = 0) -> str:
        """Run a listing with the controller's own config file; return its stdout (its exit status checked)."""
        argv = ['--config-file', config or self.controller.config, '--timeout', '5', *args]
        if fmt is not None:
            argv += ['-f', fmt]
        done = run_status(*argv)
        self.assertEqual(expect, done.returncode, 'ha-guest-status %s: exit %d\nstdout:\n%s\nstderr:\n%s'
                         % (' '.join(args), done.returncode, done.stdout, done.stderr))
        return done.stdout

    def parsed(self, fmt: str, *args: str) -> list[dict[str, Any]]:
        """A listing in ``fmt`` (json, yaml, csv) as a list of dicts."""
        out = self.status(*args, fmt=fmt)
        if fmt == 'json':
            return list(json.loads(out))
        if fmt == 'yaml':
            return list(yaml.safe_load(out) or [])
        return list(csv.DictReader(io.StringIO(out)))


class TestStatusListings(StatusTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.controller = self.start_controller()
        self.hung, self.hung_agent = self.add_guest()
        self.fine, self.fine_agent = self.add_guest()
        self.compute = self.start_compute()
        self.wait_agent_registered(self.hung_agent)
        self.wait_agent_registered(self.fine_agent)

    def _hang(self) -> dict[str, Any]:
        self.hung_agent.signal(signal.SIGSTOP)
        self.addCleanup(self.hung_agent.signal, signal.SIGCONT)
        raised = self.notification(RAISED, self.hung)
        # The counts come with the next state report (every second here); the host is listed only
        # once a first report reached a controller, which can come after the fault's notification.
        wait_for(lambda: (host := self._hosts()) and host[0]['Instances'].get('failed') == 1, TIMEOUT,
                 message='a report with the hang')
        return raised

    def _hosts(self) -> list[dict[str, Any]]:
        return [h for h in self.parsed('json', 'host', 'list') if h['Host'] == COMPUTE_HOST]

    def _host(self) -> dict[str, Any]:
        hosts = self._hosts()
        self.assertEqual(1, len(hosts), hosts)
        return hosts[0]

    def test_fault_list_every_format(self) -> None:
        raised = self._hang()
        for fmt in ('json', 'yaml', 'csv'):
            faults = self.parsed(fmt, 'fault', 'list')
            self.assertEqual([(self.hung, COMPUTE_HOST, 'missed', 'active', raised['incident_id'])],
                             [(f['Instance'], f['Host'], f['Kind'], f['State'], f['Incident']) for f in faults], fmt)
            self.assertEqual('1', str(faults[0]['Misses']), fmt)
        value = self.status('fault', 'list', '-c', 'Instance', '-c', 'State', fmt='value')
        self.assertEqual('%s active' % self.hung, value.strip())
        table = self.status('fault', 'list')
        self.assertIn(self.hung, table)
        self.assertIn('| Instance', table)
        # Filters: by host, by instance (the guest that answers has none).
        self.assertEqual(1, len(self.parsed('json', 'fault', 'list', '--host', COMPUTE_HOST)))
        self.assertEqual([], self.parsed('json', 'fault', 'list', '--host', 'elsewhere'))
        self.assertEqual([], self.parsed('json', 'fault', 'list', '--instance', self.fine))

        # Recovered: gone from the open faults, listed with --all as cleared by the recovery.
        self.hung_agent.signal(signal.SIGCONT)
        wait_for(lambda: not self.parsed('json', 'fault', 'list'), TIMEOUT, message='the fault to clear')
        cleared = self.parsed('json', 'fault', 'list', '--all', '--instance', self.hung)
        self.assertEqual([(raised['incident_id'], 'cleared', 'recovered')],
                         [(f['Incident'], f['State'], f['Cleared By']) for f in cleared])
        self.assertIsNotNone(cleared[0]['Cleared At'])

    def test_host_and_instance_listings(self) -> None:
        raised = self._hang()
        for fmt in ('json', 'yaml', 'csv'):
            hosts = [h for h in self.parsed(fmt, 'host', 'list') if h['Host'] == COMPUTE_HOST]
            self.assertEqual(['alive'], [h['Status'] for h in hosts], fmt)
            self.assertEqual('1.2', str(hosts[0]['RPC API']), fmt)
            self.assertTrue(hosts[0]['Version'], fmt)
        host = self._host()
        self.assertEqual({'failed': 1, 'healthy': 1}, host['Instances'])
        self.assertLess(host['Report Age (s)'], 5.0)
        self.assertIn("'failed': 1", self.status('host', 'list', '-c', 'Instances', fmt='value'))
        self.assertIn('failed=1', self.status('host', 'list'))

        for fmt in ('json', 'yaml', 'csv'):
            rows = {r['Instance']: r for r in self.parsed(fmt, 'instance', 'list', '--host', COMPUTE_HOST)}
            self.assertEqual({self.hung, self.fine}, set(rows), fmt)
            self.assertEqual('failed', rows[self.hung]['State'], fmt)
            self.assertGreaterEqual(int(rows[self.hung]['Misses']), 1, fmt)
            self.assertEqual(raised['incident_id'], rows[self.hung]['Incident'], fmt)
            self.assertEqual(('healthy', '100'), (rows[self.fine]['State'], str(rows[self.fine]['Interval (ms)'])))
            self.assertGreater(float(rows[self.fine]['Latency (ms)']), 0.0, fmt)
        # Without --host: every alive host.
        self.assertEqual(2, len(self.parsed('json', 'instance', 'list')))

        for fmt in ('json', 'yaml'):
            shown = yaml.safe_load(self.status('instance', 'show', self.hung, fmt=fmt))
            self.assertEqual((self.hung, COMPUTE_HOST, 'failed', 100, 1), (
                shown['Instance'], shown['Host'], shown['State'], shown['Interval (ms)'], shown['Miss Threshold']))
            self.assertGreaterEqual(shown['Misses'], 1)
            self.assertEqual(1, len(shown['Open Faults']))
            self.assertIn(raised['incident_id'], shown['Open Faults'][0])
            self.assertEqual(['heartbeat'], shown['Capabilities'])
            self.assertTrue(shown['Registered'])
            self.assertIsNotNone(shown['Registered At'])
            self.assertIn('ha-guest-agent', shown['Guest Agent'])
        fine = json.loads(self.status('instance', 'show', self.fine, '--host', COMPUTE_HOST, fmt='json'))
        self.assertEqual(('healthy', []), (fine['State'], fine['Open Faults']))
        self.assertGreater(fine['Answers'], 0)
        self.assertIsNotNone(fine['Last Answer At'])
        self.assertIn(self.fine, self.status('instance', 'show', self.fine, fmt='value'))
        self.assertIn('| Field', self.status('instance', 'show', self.fine))

        # Unknown instance: a clear error, its own exit status.
        done = run_status('--config-file', self.controller.config, 'instance', 'show',
                          '00000000-0000-0000-0000-000000000000')
        self.assertEqual(6, done.returncode, done.stderr)
        self.assertIn('watched by no compute agent', done.stderr)

        # The compute agent killed: its host turns silent, and a host fault opens.
        self.compute.stop(signal.SIGKILL)
        wait_for(lambda: self._host()['Status'] == 'silent', 15.0, message='the host to turn silent')
        faults = self.parsed('json', 'fault', 'list', '--host', COMPUTE_HOST)
        wait_for(lambda: any(f['Kind'] == 'agent_silent' for f in self.parsed('json', 'fault', 'list')), 15.0,
                 message='the host fault')
        self.assertTrue(faults)
        done = run_status('--config-file', self.controller.config, '--timeout', '1', 'instance', 'list',
                          '--host', COMPUTE_HOST)
        self.assertEqual(4, done.returncode, done.stderr)
        self.assertIn('the compute agent of host %s did not answer within 1 s' % COMPUTE_HOST, done.stderr)


class TestStatusErrors(StatusTestCase):

    def test_no_controller_is_an_error_not_a_hang(self) -> None:
        config = self.rabbit.service_config(os.path.join(self.tmp, 'lonely.conf'), 'lonely')
        started = time.monotonic()
        done = run_status('--config-file', config, '--timeout', '1', 'fault', 'list')
        self.assertEqual(4, done.returncode, done.stderr)
        self.assertIn('no controller answered within 1 s', done.stderr)
        self.assertLess(time.monotonic() - started, 30.0)

    def test_capped_client_refuses_clearly(self) -> None:
        config = self.rabbit.service_config(os.path.join(self.tmp, 'capped.conf'), 'capped',
                                            rpc={'controller_version_cap': '1.3'})
        done = run_status('--config-file', config, 'host', 'list')
        self.assertEqual(5, done.returncode, done.stderr)
        self.assertIn('host list needs controller API 1.4', done.stderr)
        self.assertIn('controller_version_cap is 1.3', done.stderr)

    def test_unreachable_broker(self) -> None:
        config = os.path.join(self.tmp, 'nobroker.conf')
        with open(config, 'w', encoding='utf-8') as handle:
            handle.write('[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:1/\n')
        done = run_status('--config-file', config, 'host', 'list')
        self.assertEqual(3, done.returncode, done.stderr)
        self.assertIn('127.0.0.1:1 unreachable', done.stderr)


class TestUpgradeCheck(StatusTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.controller = self.start_controller()
        _, agent = self.add_guest()
        self.start_compute()
        self.wait_agent_registered(agent)
        wait_for(lambda: any(h['Host'] == COMPUTE_HOST for h in self.parsed('json', 'host', 'list')), TIMEOUT,
                 message='the compute agent to report')
        self.nova = os.path.join(self.tmp, 'nova.conf')
        with open(self.nova, 'w', encoding='utf-8') as handle:
            handle.write(NOVA_GOOD % {'exchange': self.rabbit.conf.sgm.notification_exchange,
                                      'topic': self.rabbit.conf.sgm.notification_topics[0]})

    def check(self, config: str, *extra: str, nova: str | None = None) -> tuple[int, dict[str, dict[str, Any]]]:
        done = run_status('--config-file', config, '--timeout', '3', 'upgrade', 'check', '--nova-config',
                          nova or self.nova, *extra, '-f', 'json')
        self.addDetail('upgrade-check', __import__('testtools').content.text_content(done.stdout + done.stderr))
        return done.returncode, {row['Check']: row for row in json.loads(done.stdout)}

    def config(self, name: str, **groups: dict[str, Any]) -> str:
        return self.rabbit.service_config(os.path.join(self.tmp, name), 'checker', **groups)

    def test_good_config_passes(self) -> None:
        code, rows = self.check(self.config('good.conf'))
        self.assertEqual({'Options', 'Nova notifications', 'Broker', 'RPC versions'}, set(rows))
        self.assertEqual({'Success'}, {row['Result'] for row in rows.values()}, rows)
        self.assertEqual(0, code)
        table = run_status('--config-file', self.config('good.conf'), 'upgrade', 'check', '--nova-config',
                           self.nova)
        self.assertEqual(0, table.returncode, table.stdout + table.stderr)
        self.assertIn('| RPC versions', table.stdout)

    def test_contradicting_options_fail(self) -> None:
        code, rows = self.check(self.config('bad.conf', compute={'min_interval_ms': 5000, 'max_interval_ms': 1000},
                                            rpc={'compute_version_cap': '1.9'}))
        self.assertEqual(2, code)
        self.assertEqual('Failure', rows['Options']['Result'])
        self.assertIn('min_interval_ms 5000 is above max_interval_ms 1000', rows['Options']['Details'])
        self.assertIn('compute_version_cap 1.9 is not a version this release knows', rows['Options']['Details'])

    def test_nova_notifications_off_fail(self) -> None:
        nova = os.path.join(self.tmp, 'nova-off.conf')
        with open(nova, 'w', encoding='utf-8') as handle:
            handle.write('[DEFAULT]\ndebug = true\n')
        code, rows = self.check(self.config('good.conf'), nova=nova)
        self.assertEqual(2, code)
        details = rows['Nova notifications']['Details']
        self.assertIn("notification_format is 'unversioned'", details)
        self.assertIn('add messagingv2', details)

    def test_unreachable_broker_fails(self) -> None:
        config = os.path.join(self.tmp, 'nobroker.conf')
        with open(config, 'w', encoding='utf-8') as handle:
            handle.write('[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:1/\n')
        code, rows = self.check(config)
        self.assertEqual(2, code)
        self.assertEqual(('Failure', 'Failure'), (rows['Broker']['Result'], rows['RPC versions']['Result']))
        self.assertIn('127.0.0.1:1 unreachable', rows['Broker']['Details'])

    def test_cap_below_running_agents_passes(self) -> None:
        # During a rolling upgrade the cap stays at the older release's API: that is no problem.
        code, rows = self.check(self.config('capped.conf', rpc={'compute_version_cap': '1.1'}))
        self.assertEqual(0, code, rows)
