"""The compute agent (in process, directory discovery) against real guest agent processes on emulated channels."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from typing import Any

from oslo_config import cfg
from testtools import content

from ha_guest.compute.manager import ComputeManager
from ha_guest.conf import compute as compute_conf
from ha_guest.conf import default as default_conf
from ha_guest.testing import wait_for
from tests.functional.base import TIMEOUT, FunctionalTestCase

HOST = 'compute-1'


class RecordingController:
    """Stands in for ControllerAPI: records every report (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _record(self, name: str, payload: dict[str, Any]) -> Any:
        with self._lock:
            self.calls.append((name, payload))
        return {'duplicate': False} if name == 'report_fault' else None

    def report_fault(self, ctxt: Any, fault: dict[str, Any]) -> Any:
        return self._record('report_fault', fault)

    def report_recovery(self, ctxt: Any, recovery: dict[str, Any]) -> Any:
        return self._record('report_recovery', recovery)

    def report_exit(self, ctxt: Any, exit: dict[str, Any]) -> Any:
        return self._record('report_exit', exit)

    def report_state(self, ctxt: Any, report: dict[str, Any]) -> Any:
        return self._record('report_state', report)

    def of(self, name: str, instance: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [p for n, p in self.calls if n == name and instance in (None, p.get('instance_uuid'))]


class ComputeAgentTestCase(FunctionalTestCase):
    """An emulator folder watched by an in-process compute agent with a recording controller."""

    def setUp(self) -> None:
        super().setUp()
        self.host_dir = os.path.join(self.tmp, 'h')
        os.makedirs(self.host_dir, exist_ok=True)
        self.conf = cfg.ConfigOpts()
        compute_conf.register_opts(self.conf)
        default_conf.register_opts(self.conf)
        self.conf([])
        for name, value in (('discovery_driver', 'directory'), ('directory_path', self.host_dir),
                            ('state_file', os.path.join(self.tmp, 'compute-state.json')),
                            ('reconnect_min_s', 0.05), ('reconnect_max_s', 0.5)):
            self.conf.set_override(name, value, 'compute')
        self.controller = RecordingController()
        self.addCleanup(self._attach_reports)
        self.manager: ComputeManager | None = None

    def start_compute(self) -> ComputeManager:
        manager = ComputeManager(self.conf, self.controller, host=HOST)
        manager.start()
        self.addCleanup(manager.stop, 0.5)
        self.manager = manager
        return manager

    def stop_compute(self) -> None:
        assert self.manager is not None
        self.manager.stop(flush_timeout=1.0)
        self.manager = None

    def instance(self) -> tuple[str, Any]:
        """A channel with a real guest agent on it; returns (instance uuid, agent)."""
        instance = str(uuid.uuid4())
        _, guest_socket = self.add_channel(instance)
        return instance, self.start_agent(guest_socket)

    def monitor_state(self, instance: str) -> str | None:
        assert self.manager is not None
        stats = self.manager.instance_stats(instance)
        return stats.state.value if stats is not None else None

    def answers(self, instance: str) -> int:
        assert self.manager is not None
        stats = self.manager.instance_stats(instance)
        return stats.responses if stats is not None else 0

    def wait_watched(self, instance: str, answers: int = 3) -> None:
        wait_for(lambda: self.manager is not None and self.manager.instance_stats(instance), TIMEOUT,
                 message='discovery')
        wait_for(lambda: self.monitor_state(instance) == 'healthy' and self.answers(instance) >= answers, TIMEOUT,
                 message='the guest to register and answer')

    def marker(self, instance: str) -> str:
        return os.path.join(self.host_dir, instance + '.suspended')

    def _attach_reports(self) -> None:
        text = '\n'.join('%s %r' % call for call in self.controller.calls[-200:])
        self.addDetail('controller-reports', content.text_content(text))


class TestComputeAgent(ComputeAgentTestCase):

    def test_hang_is_one_fault_and_continue_recovers(self) -> None:
        self.start_compute()
        instance, agent = self.instance()
        self.wait_watched(instance)
        hung_at = time.time()
        agent.signal(signal.SIGSTOP)
        fault = wait_for(lambda: self.controller.of('report_fault', instance), TIMEOUT, message='a fault')[0]
        self.assertEqual(('missed', HOST, 100), (fault['kind'], fault['host'], fault['interval_ms']))
        # Detected within two intervals and a tick (plus scheduling slack of a busy test machine).
        self.assertLess(fault['detected_at'] - hung_at, 0.5)
        time.sleep(0.5)
        self.assertEqual(1, len(self.controller.of('report_fault', instance)))
        agent.signal(signal.SIGCONT)
        recovery = wait_for(lambda: self.controller.of('report_recovery', instance), TIMEOUT, message='a recovery')[0]
        self.assertEqual(fault['incident_id'], recovery['incident_id'])
        self.assertEqual('healthy', self.monitor_state(instance))

    def test_paused_instance_is_not_a_fault(self) -> None:
        self.start_compute()
        instance, agent = self.instance()
        self.wait_watched(instance)
        open(self.marker(instance), 'w').close()
        wait_for(lambda: self.monitor_state(instance) == 'suspended', TIMEOUT, message='the pause to be seen')
        agent.signal(signal.SIGSTOP)
        time.sleep(1.0)
        agent.signal(signal.SIGCONT)
        time.sleep(0.2)  # the paused guest's vCPUs run again before the domain is reported running
        os.unlink(self.marker(instance))
        wait_for(lambda: self.monitor_state(instance) == 'healthy', TIMEOUT, message='the resume to be seen')
        answered = self.answers(instance)
        wait_for(lambda: self.answers(instance) > answered + 3, TIMEOUT, message='answers after the resume')
        self.assertEqual([], self.controller.of('report_fault'))

    def test_guest_exit_is_not_a_fault(self) -> None:
        self.start_compute()
        instance, agent = self.instance()
        self.wait_watched(instance)
        agent.signal(signal.SIGTERM)
        self.assertEqual(0, agent.wait())
        exited = wait_for(lambda: self.controller.of('report_exit', instance), TIMEOUT, message='an exit report')[0]
        self.assertEqual('agent stopping', exited['reason'])
        time.sleep(0.5)
        self.assertEqual('exited', self.monitor_state(instance))
        self.assertEqual([], self.controller.of('report_fault'))

    def test_unhealthy_guest_is_a_fault(self) -> None:
        self.start_compute()
        instance = str(uuid.uuid4())
        _, guest_socket = self.add_channel(instance)
        flag = os.path.join(self.tmp, 'healthy')
        open(flag, 'w').close()
        self.start_agent(guest_socket, checks={'flag': 'test -e %s' % flag}, extra=['--check-period', '0.2'])
        self.wait_watched(instance)
        os.unlink(flag)
        fault = wait_for(lambda: self.controller.of('report_fault', instance), TIMEOUT, message='a fault')[0]
        self.assertEqual('unhealthy', fault['kind'])
        self.assertIn('flag', fault['reason'])

    def test_channel_removed_ends_monitoring(self) -> None:
        self.start_compute()
        instance, _ = self.instance()
        self.wait_watched(instance)
        self.emulator.remove(instance)
        wait_for(lambda: self.monitor_state(instance) is None, TIMEOUT, message='the channel to be forgotten')
        time.sleep(0.3)
        self.assertEqual([], self.controller.of('report_fault'))


class TestComputeRestart(ComputeAgentTestCase):

    def test_restart_with_healthy_guests_raises_nothing(self) -> None:
        self.start_compute()
        guests = [self.instance() for _ in range(3)]
        for instance, _ in guests:
            self.wait_watched(instance)
        self.stop_compute()
        time.sleep(0.5)  # the agents answer nobody meanwhile
        self.start_compute()
        for instance, _ in guests:
            self.wait_watched(instance, answers=5)
        time.sleep(0.5)
        self.assertEqual([], self.controller.of('report_fault'))

    def test_restart_while_hung_reports_the_same_incident(self) -> None:
        self.start_compute()
        instance, agent = self.instance()
        self.wait_watched(instance)
        agent.signal(signal.SIGSTOP)
        fault = wait_for(lambda: self.controller.of('report_fault', instance), TIMEOUT, message='a fault')[0]
        self.stop_compute()
        self.controller.calls.clear()
        self.start_compute()
        wait_for(lambda: self.manager is not None and self.manager.instance_stats(instance), TIMEOUT,
                 message='discovery after the restart')
        time.sleep(0.5)  # the restarted agent has challenged the hung guest a few times
        # The fault was acknowledged before the stop: the restarted agent keeps its incident and does not
        # report it again, unless the acknowledgement had not reached the state file when it stopped (then
        # it sends it once more, under the same incident id and detection time).
        again = self.controller.of('report_fault', instance)
        self.assertLessEqual(len(again), 1)
        for report in again:
            self.assertEqual((fault['incident_id'], fault['detected_at']),
                             (report['incident_id'], report['detected_at']))
        agent.signal(signal.SIGCONT)
        recovery = wait_for(lambda: self.controller.of('report_recovery', instance), TIMEOUT, message='a recovery')[0]
        self.assertEqual(fault['incident_id'], recovery['incident_id'])
        self.assertEqual(again, self.controller.of('report_fault', instance))
