"""The whole heartbeat chain on a real RabbitMQ: guest agent processes on emulated channels, an
ha-guest-compute process (directory discovery) and ha-guest-controller process(es), and a listener on
the controller's notifications topic."""

from __future__ import annotations

import os
import queue
import time
import uuid
from typing import Any

from ha_guest.sinks import base as sinks_base
from ha_guest.testing import wait_for
from tests.functional.base import Agent, FunctionalTestCase
from tests.functional.rabbit import TIMEOUT, ControllerProcess, RabbitFixture, ServiceProcess
from tests.messaging import NotificationListenerFixture

COMPUTE_MODULE = 'ha_guest.cmd.compute'
COMPUTE_HOST = 'chain-compute-1'
CONTROLLER_HOST = 'chain-controller'
RAISED, CLEARED = sinks_base.EVENT_FAULT_RAISED, sinks_base.EVENT_FAULT_CLEARED
#: Heartbeat intervals a guest may miss while a test checks that nothing happens.
QUIET_S = 1.0


class ChainTestCase(FunctionalTestCase):
    """Emulator + real agents (FunctionalTestCase), real compute and controller processes, a broker."""

    def setUp(self) -> None:
        super().setUp()
        self.rabbit = self.useFixture(RabbitFixture(self.broker_url()))
        self.host_dir = os.path.join(self.tmp, 'h')  # the emulator's host sockets: what QEMU would bind
        os.makedirs(self.host_dir, exist_ok=True)
        listener = NotificationListenerFixture(self.rabbit.notification_transport,
                                               self.rabbit.conf.sink_notifications.topics)
        self.collector = self.useFixture(listener).collector
        self.notifications: list[dict[str, Any]] = []
        self._computes = 0

    def broker_url(self) -> str | None:
        """The broker of this test (None: the shared one, HA_GUEST_TRANSPORT_URL or 127.0.0.1:5672)."""
        return None

    # -- services ---------------------------------------------------------------------------------

    def start_controller(self) -> ControllerProcess:
        """Start an ha-guest-controller (sinks log and notifications); ready when it answers."""
        return self.useFixture(ControllerProcess(self.rabbit, CONTROLLER_HOST, self.tmp,
                                                 controller={'fault_sinks': 'log,notifications'}))

    def start_compute(self) -> ServiceProcess:
        """Start an ha-guest-compute process watching the emulator's host socket folder."""
        self._computes += 1
        config = self.rabbit.service_config(os.path.join(self.tmp, 'compute.conf'), COMPUTE_HOST, compute={
            'discovery_driver': 'directory', 'directory_path': self.host_dir, 'directory_poll_s': 0.1,
            'state_file': os.path.join(self.tmp, 'compute-state.json'), 'reconnect_min_s': 0.05,
            'reconnect_max_s': 0.5})
        return self.useFixture(ServiceProcess('compute-%d' % self._computes,
                                              ['-m', COMPUTE_MODULE, '--config-file', config], self.tmp))

    def add_guest(self, **kwargs: Any) -> tuple[str, Agent]:
        """A channel with a real guest agent on it; returns (instance uuid, agent)."""
        instance = str(uuid.uuid4())
        _, guest_socket = self.add_channel(instance)
        return instance, self.start_agent(guest_socket, **kwargs)

    @staticmethod
    def wait_agent_registered(agent: Agent, times: int = 1, timeout: float = TIMEOUT) -> None:
        """Wait until the agent has registered ``times`` times (once per compute agent session)."""
        wait_for(lambda: agent.log().count('registered: interval') >= times, timeout,
                 message='%s to register (%d)' % (agent.name, times))

    @staticmethod
    def wait_log(service: ServiceProcess, text: str, timeout: float = TIMEOUT) -> None:
        """Wait until a service process logged ``text``; fail early if it died."""
        def logged() -> bool:
            if not service.alive():
                raise AssertionError('%s exited:\n%s' % (service.name, service.log()))
            return text in service.log()

        wait_for(logged, timeout, message='%s to log %r' % (service.name, text))

    # -- notifications ----------------------------------------------------------------------------

    def notification(self, event_type: str, instance: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Return the payload of the next ``event_type`` notification of ``instance``."""
        deadline = time.monotonic() + timeout
        while True:
            for item in self.notifications:
                if item['event_type'] == event_type and item['payload']['instance_uuid'] == instance:
                    self.notifications.remove(item)
                    return dict(item['payload'])
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('no %s notification for %s within %.0fs; got %s'
                                     % (event_type, instance, timeout, self.notifications))
            try:
                self.notifications.append(self.collector.received.get(timeout=min(left, 0.2)))
            except queue.Empty:
                pass

    def assertNoNotification(self, wait: float = QUIET_S) -> None:
        """Nothing more arrives on the notifications topic within ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                self.notifications.append(self.collector.received.get(timeout=0.1))
            except queue.Empty:
                pass
        self.assertEqual([], self.notifications)
