"""A real ha-guest-compute process on a real RabbitMQ, with a recording controller endpoint in the test."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from typing import Any

import oslo_messaging

from ha_guest import rpc
from ha_guest.testing import wait_for
from tests.functional.base import FunctionalTestCase
from tests.functional.rabbit import TIMEOUT, RabbitFixture, ServiceProcess

COMPUTE_MODULE = 'ha_guest.cmd.compute'
HOST = 'compute-process-1'


class RecordingEndpoint:
    """The controller's RPC methods, recording what the compute agent sends."""

    target = oslo_messaging.Target(version='1.0')

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _record(self, name: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append((name, payload))

    def report_fault(self, ctxt: Any, fault: dict[str, Any]) -> dict[str, bool]:
        self._record('report_fault', fault)
        return {'duplicate': False}

    def report_recovery(self, ctxt: Any, recovery: dict[str, Any]) -> None:
        self._record('report_recovery', recovery)

    def report_exit(self, ctxt: Any, exit: dict[str, Any]) -> None:
        self._record('report_exit', exit)

    def report_state(self, ctxt: Any, report: dict[str, Any]) -> None:
        self._record('report_state', report)

    def list_faults(self, ctxt: Any, instance_uuid: Any = None) -> list[Any]:
        return []

    def of(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [payload for call, payload in self.calls if call == name]


class TestComputeProcess(FunctionalTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.rabbit = self.useFixture(RabbitFixture())
        self.endpoint = RecordingEndpoint()
        server = rpc.get_rpc_server(self.rabbit.transport, rpc.controller_server_target(self.rabbit.conf, 'test'),
                                    [self.endpoint])
        server.start()

        def stop_server() -> None:
            server.stop()
            server.wait()

        self.addCleanup(stop_server)
        self.host_dir = os.path.join(self.tmp, 'h')
        os.makedirs(self.host_dir, exist_ok=True)

    def start_compute(self) -> ServiceProcess:
        config = self.rabbit.service_config(os.path.join(self.tmp, 'compute.conf'), HOST, compute={
            'discovery_driver': 'directory', 'directory_path': self.host_dir,
            'state_file': os.path.join(self.tmp, 'compute-state.json'), 'state_report_interval_s': 60})
        return self.useFixture(ServiceProcess(HOST, ['-m', COMPUTE_MODULE, '--config-file', config], self.tmp))

    def test_faults_reach_the_controller_and_sigterm_exits_zero(self) -> None:
        instance = str(uuid.uuid4())
        _, guest_socket = self.add_channel(instance)
        agent = self.start_agent(guest_socket)
        compute = self.start_compute()
        # The first state report goes out a second after start; it lists the guest once registered.
        api = rpc.ComputeAPI(self.rabbit.conf, self.rabbit.transport)

        def registered() -> bool:
            if not compute.alive():
                raise AssertionError('ha-guest-compute exited:\n%s' % compute.log())
            api.request_state_report(None)
            return any(i['instance_uuid'] == instance and i['state'] == 'healthy'
                       for report in self.endpoint.of('report_state') for i in report['instances'])

        wait_for(registered, 20.0, 0.5, 'a state report with the registered guest')
        agent.signal(signal.SIGSTOP)
        fault = wait_for(lambda: self.endpoint.of('report_fault'), TIMEOUT, message='a fault at the controller')[0]
        self.assertEqual((instance, HOST, 'missed'), (fault['instance_uuid'], fault['host'], fault['kind']))
        agent.signal(signal.SIGCONT)
        recovery = wait_for(lambda: self.endpoint.of('report_recovery'), TIMEOUT,
                            message='a recovery at the controller')[0]
        self.assertEqual(fault['incident_id'], recovery['incident_id'])
        self.assertEqual(0, compute.stop(signal.SIGTERM))
        self.assertIn('compute agent stopped', compute.log())

    def test_sigint_exits_zero_without_guests(self) -> None:
        compute = self.start_compute()
        wait_for(lambda: 'compute agent started' in compute.log() or not compute.alive(), TIMEOUT,
                 message='the agent to start')
        self.assertTrue(compute.alive(), compute.log())
        self.assertEqual(0, compute.stop(signal.SIGINT))
