"""A real ha-guest-compute killed with SIGKILL at any moment, a lost state file, a removed channel.

A recording controller endpoint in the test (real RabbitMQ) counts what the
agent reports: after every crash there is exactly one incident per hang
(the same incident id before and after) and exactly one recovery.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from typing import Any

import fixtures
import oslo_messaging

from ha_guest import rpc
from ha_guest.testing import wait_for
from tests.functional.base import Agent, FunctionalTestCase
from tests.functional.rabbit import TIMEOUT, RabbitFixture, ServiceProcess

COMPUTE_MODULE = 'ha_guest.cmd.compute'
HOST = 'compute-durability-1'
RESTART_GRACE_S = 1.0
#: Delays between the agent's detection of a fault (its FAULT log line) and its SIGKILL.
KILL_DELAYS_S = (0.0, 0.002, 0.01, 0.05, 0.3)
#: Longer than a restarted agent needs to fault a hung guest it had forgotten (grace, then misses).
SETTLE_S = RESTART_GRACE_S + 1.5
CORRUPT = '{"version": 2, "instances": [{"instance_uu\x00'


class RecordingController:
    """The controller's RPC methods (1.0 to 1.2), recording what compute agents report; keeps open faults."""

    target = oslo_messaging.Target(version='1.9')

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.open: dict[str, dict[str, Any]] = {}  # incident id -> fault
        self.list_calls: list[Any] = []

    def _record(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls.append((name, payload))
            duplicate = False
            if name == 'report_fault':
                duplicate = payload['incident_id'] in self.open
                self.open[payload['incident_id']] = payload
            elif name == 'report_recovery':
                self.open.pop(payload['incident_id'], None)
            elif name == 'report_exit':
                for key in [k for k, f in self.open.items() if f['instance_uuid'] == payload['instance_uuid']]:
                    del self.open[key]
            return {'duplicate': duplicate}

    def report_fault(self, ctxt: Any, fault: dict[str, Any]) -> dict[str, bool]:
        return self._record('report_fault', fault)

    def report_recovery(self, ctxt: Any, recovery: dict[str, Any]) -> None:
        self._record('report_recovery', recovery)

    def report_exit(self, ctxt: Any, exit: dict[str, Any]) -> None:  # noqa: A002 - the contract's name
        self._record('report_exit', exit)

    def report_batch(self, ctxt: Any, reports: list[dict[str, Any]]) -> dict[str, Any]:
        names = {'fault': 'report_fault', 'recovery': 'report_recovery', 'exit': 'report_exit'}
        return {'results': [self._record(names[item['type']], item['payload']) for item in reports]}

    def report_state(self, ctxt: Any, report: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append(('report_state', report))

    def list_faults(self, ctxt: Any, instance_uuid: Any = None, host: Any = None) -> list[dict[str, Any]]:
        with self._lock:
            self.list_calls.append(host)
            return [dict(f, state='active') for f in self.open.values() if host is None or f['host'] == host]

    def of(self, name: str, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [payload for call, payload in self.calls[since:] if call == name]

    def count(self) -> int:
        with self._lock:
            return len(self.calls)


class TestComputeDurability(FunctionalTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(fixtures.Timeout(240, gentle=True))
        self.rabbit = self.useFixture(RabbitFixture())
        self.controller = RecordingController()
        server = rpc.get_rpc_server(self.rabbit.transport, rpc.controller_server_target(self.rabbit.conf, 'test'),
                                    [self.controller])
        server.start()

        def stop_server() -> None:
            server.stop()
            server.wait()

        self.addCleanup(stop_server)
        self.state_file = os.path.join(self.tmp, 'compute-state.json')
        self._computes = 0

    def start_compute(self) -> ServiceProcess:
        self._computes += 1
        config = self.rabbit.service_config(os.path.join(self.tmp, 'compute.conf'), HOST, compute={
            'discovery_driver': 'directory', 'directory_path': os.path.join(self.tmp, 'h'),
            'directory_poll_s': 0.1, 'state_file': self.state_file, 'restart_grace_s': RESTART_GRACE_S,
            'reconnect_min_s': 0.05, 'reconnect_max_s': 0.5, 'state_report_interval_s': 60})
        compute = self.useFixture(ServiceProcess('compute-%d' % self._computes,
                                                 ['-m', COMPUTE_MODULE, '--config-file', config], self.tmp))
        self.wait_log(compute, 'compute agent started')
        return compute

    @staticmethod
    def wait_log(service: ServiceProcess, text: str, timeout: float = TIMEOUT, poll: float = 0.05) -> None:
        def logged() -> bool:
            if not service.alive():
                raise AssertionError('%s exited:\n%s' % (service.name, service.log()))
            return text in service.log()

        wait_for(logged, timeout, poll, '%s to log %r' % (service.name, text))

    def guest(self) -> tuple[str, Agent]:
        instance = str(uuid.uuid4())
        _, guest_socket = self.add_channel(instance)
        return instance, self.start_agent(guest_socket)

    @staticmethod
    def wait_registered(agent: Agent, times: int) -> None:
        wait_for(lambda: agent.log().count('registered: interval') >= times, TIMEOUT,
                 message='%s to register (%d)' % (agent.name, times))

    def hang_and_kill(self, compute: ServiceProcess, agent: Agent, delay: float) -> None:
        """Hang the guest, SIGKILL the compute agent ``delay`` seconds after it logged the fault."""
        faults = compute.log().count(': FAULT ')
        agent.signal(signal.SIGSTOP)
        wait_for(lambda: compute.log().count(': FAULT ') > faults, TIMEOUT, 0.001, 'the fault to be detected')
        time.sleep(delay)
        self.assertEqual(-signal.SIGKILL, compute.stop(signal.SIGKILL))

    def assert_one_incident_one_recovery(self, instance: str, since: int, agent: Agent) -> str:
        """After a restart: the hung guest is one incident; once it answers, one recovery of it."""
        time.sleep(SETTLE_S)  # a forgotten hang would be a second incident by now
        agent.signal(signal.SIGCONT)
        wait_for(lambda: self.controller.of('report_recovery', since), TIMEOUT, message='a recovery')
        time.sleep(1.0)  # nothing more comes
        faults = {f['incident_id'] for f in self.controller.of('report_fault', since)
                  if f['instance_uuid'] == instance}
        recoveries = [r['incident_id'] for r in self.controller.of('report_recovery', since)]
        self.assertEqual(1, len(faults), 'incidents: %s' % faults)
        self.assertEqual(list(faults), recoveries)
        detected = {f['detected_at'] for f in self.controller.of('report_fault', since)}
        self.assertEqual(1, len(detected), 'one detection time per incident: %s' % detected)
        return recoveries[0]

    def test_kill_9_at_any_moment_after_a_fault_keeps_one_incident(self) -> None:
        instance, agent = self.guest()
        compute = self.start_compute()
        for round_number, delay in enumerate(KILL_DELAYS_S, 1):
            self.wait_registered(agent, round_number)
            since = self.controller.count()
            self.hang_and_kill(compute, agent, delay)
            before_kill = len(self.controller.of('report_fault', since))
            compute = self.start_compute()
            self.assert_one_incident_one_recovery(instance, since, agent)
            print('kill -9 %.0f ms after detection: %d fault report(s) before the kill, %d after the restart, '
                  'one incident, one recovery' % (delay * 1000, before_kill,
                                                  len(self.controller.of('report_fault', since)) - before_kill))
        self.assertEqual(0, compute.stop(signal.SIGTERM))

    def test_corrupt_state_file_keeps_the_open_fault(self) -> None:
        instance, agent = self.guest()
        compute = self.start_compute()
        self.wait_registered(agent, 1)
        self.hang_and_kill(compute, agent, 0.5)  # announced, saved
        with open(self.state_file, 'w', encoding='utf-8') as handle:
            handle.write(CORRUPT)
        compute = self.start_compute()
        self.assertIn('using the previous generation', compute.log())
        self.assert_one_incident_one_recovery(instance, 0, agent)
        self.assertEqual([], self.controller.list_calls)

    def test_lost_state_file_relearns_open_faults_from_the_controller(self) -> None:
        instance, agent = self.guest()
        healthy, other = self.guest()
        compute = self.start_compute()
        self.wait_registered(agent, 1)
        self.wait_registered(other, 1)
        self.hang_and_kill(compute, agent, 0.5)
        for path in (self.state_file, self.state_file + '.prev'):
            with open(path, 'w', encoding='utf-8') as handle:
                handle.write(CORRUPT)
        compute = self.start_compute()
        self.assertEqual([HOST], self.controller.list_calls)
        self.assert_one_incident_one_recovery(instance, 0, agent)
        self.wait_registered(other, 2)
        self.assertEqual([], [f for f in self.controller.of('report_fault') if f['instance_uuid'] == healthy])

    def test_removed_channel_with_an_open_fault_is_cleared_within_a_second(self) -> None:
        instance, agent = self.guest()
        self.start_compute()
        self.wait_registered(agent, 1)
        agent.signal(signal.SIGSTOP)
        wait_for(lambda: self.controller.of('report_fault'), TIMEOUT, message='the fault')
        started = time.monotonic()
        self.emulator.remove(instance)  # the domain stopped: its channel socket goes
        exit_report = wait_for(lambda: self.controller.of('report_exit'), TIMEOUT, 0.01, 'an exit')[0]
        elapsed = time.monotonic() - started
        print('removed channel -> exit at the controller: %.0f ms' % (elapsed * 1000))
        self.assertLess(elapsed, 1.0)
        self.assertEqual(instance, exit_report['instance_uuid'])
        self.assertEqual({}, self.controller.open)
        self.assertEqual([], self.controller.of('report_recovery'))
        agent.signal(signal.SIGCONT)
