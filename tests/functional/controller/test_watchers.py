"""Watch the watchers on a real RabbitMQ: a ha-guest-compute killed -9, a guest that never registers."""

from __future__ import annotations

import os
import queue
import signal
import time
from typing import Any

from ha_guest.testing import wait_for
from tests.functional.base import FunctionalTestCase
from tests.functional.rabbit import TIMEOUT, ControllerProcess, RabbitFixture, ServiceProcess
from tests.messaging import NotificationCollector, NotificationListenerFixture

COMPUTE_MODULE = 'ha_guest.cmd.compute'
HOST = 'watched-compute-1'
DOWN_S = 3.0
REPORT_S = 1
#: What the raise may take past agent_down_time_s: a tick, a peer beat, the notification's trip.
BOUND_S = 2.0
WATCH = {'agent_down_time_s': DOWN_S, 'peer_beat_interval_s': 0.3, 'fault_sinks': 'log,notifications'}
HOST_EVENTS = ('ha_guest.host.fault.raised', 'ha_guest.host.fault.cleared')


class WatchersTestCase(FunctionalTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.rabbit = self.useFixture(RabbitFixture())
        self.notifications = self.useFixture(NotificationListenerFixture(
            self.rabbit.notification_transport, self.rabbit.conf.sink_notifications.topics)).collector
        self.host_dir = os.path.join(self.tmp, 'h')
        self._computes = 0

    def start_controller(self, host: str, **options: Any) -> ControllerProcess:
        return self.useFixture(ControllerProcess(self.rabbit, host, self.tmp, controller=dict(WATCH, **options)))

    def start_compute(self) -> ServiceProcess:
        self._computes += 1
        config = self.rabbit.service_config(os.path.join(self.tmp, 'compute.conf'), HOST, compute={
            'discovery_driver': 'directory', 'directory_path': self.host_dir,
            'state_file': os.path.join(self.tmp, 'compute-state.json'), 'state_report_interval_s': REPORT_S})
        return self.useFixture(ServiceProcess('compute-%d' % self._computes,
                                              ['-m', COMPUTE_MODULE, '--config-file', config], self.tmp))

    def events(self, types: tuple[str, ...], wait: float) -> list[dict[str, Any]]:
        """Return the notifications of ``types`` that arrive within ``wait`` seconds."""
        got = []
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            try:
                item = self.notifications.received.get(timeout=left)
            except queue.Empty:
                break
            if item['event_type'] in types:
                got.append(item)
        return got

    def next_event(self, collector: NotificationCollector, types: tuple[str, ...], timeout: float) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            item = collector.get(max(0.01, end - time.monotonic()))
            if item['event_type'] in types:
                return item

    def seen(self, controller: ControllerProcess, compute: ServiceProcess) -> None:
        """Wait until the controllers have a state report of the compute agent (nothing is raised before)."""
        def reported() -> bool:
            if not compute.alive():
                raise AssertionError('ha-guest-compute exited:\n%s' % compute.log())
            return 'compute agent started' in compute.log()
        wait_for(reported, TIMEOUT, message='ha-guest-compute to start')
        time.sleep(2 * REPORT_S)


class TestDeadAgent(WatchersTestCase):

    def test_kill_9_raises_once_and_restart_clears_once(self) -> None:
        controller = self.start_controller('ctl-a')
        compute = self.start_compute()
        self.seen(controller, compute)
        self.assertEqual([], controller.api.list_host_faults(None))

        compute.stop(signal.SIGKILL)
        killed = time.time()
        raised = self.next_event(self.notifications, HOST_EVENTS, DOWN_S + BOUND_S + TIMEOUT)
        took = time.time() - killed
        print('dead agent: host fault raised %.2f s after kill -9 (agent_down_time_s %.1f)' % (took, DOWN_S))
        self.assertEqual('ha_guest.host.fault.raised', raised['event_type'])
        payload = raised['payload']
        self.assertEqual((HOST, 'agent_silent', 'active'), (payload['host'], payload['kind'], payload['state']))
        self.assertLessEqual(took, DOWN_S + REPORT_S + BOUND_S)
        self.assertLessEqual(payload['last_report_at'], killed)
        self.assertEqual([payload], controller.api.list_host_faults(None))
        self.assertEqual([], self.events(HOST_EVENTS, 2 * DOWN_S))  # still silent: nothing more

        self.start_compute()
        cleared = self.next_event(self.notifications, HOST_EVENTS, TIMEOUT)
        self.assertEqual('ha_guest.host.fault.cleared', cleared['event_type'])
        self.assertEqual((payload['incident_id'], 'reported'),
                         (cleared['payload']['incident_id'], cleared['payload']['cleared_by']))
        self.assertEqual([], controller.api.list_host_faults(None))
        self.assertEqual([], self.events(HOST_EVENTS, 2 * DOWN_S))
        self.assertIn('ha_guest.host.fault.raised', controller.log())

    def test_two_controllers_one_raise_one_clear_across_a_leader_kill(self) -> None:
        leader = self.start_controller('ctl-a')
        other = self.start_controller('ctl-b')
        compute = self.start_compute()
        self.seen(leader, compute)
        compute.stop(signal.SIGKILL)
        raised = self.next_event(self.notifications, HOST_EVENTS, DOWN_S + BOUND_S + TIMEOUT)
        self.assertEqual(('ha_guest.host.fault.raised', 'ha_guest.controller.ctl-a'),
                         (raised['event_type'], raised['publisher_id']))
        wait_for(lambda: other.api.list_host_faults(None), TIMEOUT, message='the peer to learn the host fault')

        leader.stop(signal.SIGKILL)  # the leader dies; a new controller starts and learns from its peer
        newcomer = self.start_controller('ctl-0')
        self.assertEqual([], self.events(HOST_EVENTS, 3 * DOWN_S))  # nobody raises it again
        self.assertEqual([raised['payload']['incident_id']],
                         [f['incident_id'] for f in newcomer.api.list_host_faults(None)])

        self.start_compute()
        cleared = self.next_event(self.notifications, HOST_EVENTS, TIMEOUT)
        self.assertEqual(('ha_guest.host.fault.cleared', raised['payload']['incident_id']),
                         (cleared['event_type'], cleared['payload']['incident_id']))
        self.assertEqual([], self.events(HOST_EVENTS, 2 * DOWN_S))

