"""A small cloud on one machine for server group messaging: RabbitMQ, a stub Nova, several compute hosts.

Each compute host is a real ha-guest-compute process (directory discovery)
over a channel emulator of its own; instances are real ha-guest-agent
processes on emulated channels; the controllers are real ha-guest-controller
processes whose [nova_api] points at the stub Nova (ha_guest/testing/openstack_stub.py)
and whose [sgm] listener consumes this test's own versioned-notification
topic.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any, Optional

from ha_guest.emulator.thread import EmulatorThread
from ha_guest.testing import wait_for
from ha_guest.testing.openstack_stub import OpenStackStub, nova_api_options
from tests.functional.base import Agent, FunctionalTestCase
from tests.functional.rabbit import TIMEOUT, ControllerProcess, RabbitFixture, ServiceProcess
from tests.sgm import nova_emit

COMPUTE_MODULE = 'ha_guest.cmd.compute'


class Host:
    """One compute host: its emulator's folders, its emulator and its ha-guest-compute process."""

    def __init__(self, name: str, host_dir: str, guest_dir: str, emulator: EmulatorThread) -> None:
        self.name = name
        self.host_dir = host_dir
        self.guest_dir = guest_dir
        self.emulator = emulator
        self.process: Optional[ServiceProcess] = None


class SgmTestCase(FunctionalTestCase):
    """Real compute agents, controllers and guest agents on a real broker, with a stub Nova."""

    HOSTS = ('sgm-compute-1', 'sgm-compute-2')

    def setUp(self) -> None:
        super().setUp()
        self.rabbit = self.useFixture(RabbitFixture())
        self.stub = OpenStackStub()
        self.stub.start()
        self.addCleanup(self.stub.stop)
        self.nova_topic = nova_emit.TOPIC
        self.hosts: dict[str, Host] = {}
        for name in self.HOSTS:
            host_dir, guest_dir = os.path.join(self.tmp, name, 'h'), os.path.join(self.tmp, name, 'g')
            emulator = EmulatorThread(host_dir, guest_dir, timeout=TIMEOUT)
            emulator.start()
            self.addCleanup(emulator.stop)
            self.hosts[name] = Host(name, host_dir, guest_dir, emulator)
        self.controllers: list[ControllerProcess] = []

    # -- services ---------------------------------------------------------------------------------

    def start_controller(self, name: str = 'sgm-controller-1') -> ControllerProcess:
        """Start an ha-guest-controller with SGM on, Nova = the stub; ready when it answers."""
        controller = self.useFixture(ControllerProcess(
            self.rabbit, name, self.tmp, controller={'fault_sinks': 'log'},
            sgm={'enabled': True, 'notification_topics': self.nova_topic,
                 'notification_exchange': nova_emit.EXCHANGE, 'nova_timeout_s': 2.0},
            nova_api=nova_api_options(self.stub)))
        self.controllers.append(controller)
        return controller

    def start_compute(self, host: str) -> ServiceProcess:
        """Start the ha-guest-compute process of ``host``."""
        where = self.hosts[host]
        config = self.rabbit.service_config(os.path.join(self.tmp, '%s.conf' % host), host, compute={
            'discovery_driver': 'directory', 'directory_path': where.host_dir, 'directory_poll_s': 0.1,
            'state_file': os.path.join(self.tmp, '%s-state.json' % host), 'reconnect_min_s': 0.05,
            'reconnect_max_s': 0.5})
        where.process = self.useFixture(ServiceProcess(host, ['-m', COMPUTE_MODULE, '--config-file', config],
                                                       self.tmp))
        return where.process

    # -- instances --------------------------------------------------------------------------------

    def add_instance(self, host: str, *, heartbeat: bool = True, sgm: bool = True,
                     extra_specs: Optional[dict[str, str]] = None, **server: Any) -> str:
        """Create an instance on ``host`` (stub Nova server + emulated channel with its features file)."""
        instance = str(uuid.uuid4())
        where = self.hosts[host]
        os.makedirs(where.host_dir, exist_ok=True)
        # The features file first: discovery reads it when the socket appears.
        temporary = os.path.join(where.host_dir, '.%s.features' % instance)  # hidden names are not read
        with open(temporary, 'w', encoding='utf-8') as handle:
            json.dump({'heartbeat': heartbeat, 'server_group_messaging': sgm}, handle)
        os.rename(temporary, os.path.join(where.host_dir, '%s.features' % instance))
        specs = {'ha_guest:heartbeat': str(heartbeat).lower(), 'ha_guest:server_group_messaging': str(sgm).lower()}
        specs.update(extra_specs or {})
        self.stub.add_server(specs, host=host, uuid=instance, **server)
        where.emulator.add(instance)
        return instance

    def start_guest(self, host: str, instance: str, **kwargs: Any) -> Agent:
        """Start a real ha-guest-agent inside ``instance``."""
        guest_socket = os.path.join(self.hosts[host].guest_dir, '%s.sock' % instance)
        return self.start_agent(guest_socket, name='guest-%s' % instance[:8], **kwargs)

    def wait_session(self, agent: Agent, timeout: float = TIMEOUT) -> None:
        """Wait until the agent has a session with its compute agent."""
        wait_for(lambda: 'session ' in agent.log() and ' started' in agent.log(), timeout,
                 message='%s to start a session' % agent.name)
