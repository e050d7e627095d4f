"""Restarts in the whole chain: the compute agent, the controller, the broker."""

from __future__ import annotations

import signal
import time

from ha_guest.testing import wait_for
from tests.functional.chain import CLEARED, QUIET_S, RAISED, ChainTestCase
from tests.functional.rabbit import TIMEOUT, ControllerProcess


class TestChainRestarts(ChainTestCase):

    def test_compute_restart_with_healthy_guests_is_no_fault(self) -> None:
        controller = self.start_controller()
        guests = [self.add_guest() for _ in range(2)]
        compute = self.start_compute()
        for _, agent in guests:
            self.wait_agent_registered(agent)
        self.assertEqual(0, compute.stop(signal.SIGTERM))
        time.sleep(0.5)  # the guests answer nobody meanwhile
        self.start_compute()
        for _, agent in guests:  # a new session: each registers again
            self.wait_agent_registered(agent, times=2)
        # Past [compute] restart_grace_s (3 s): a guest the restarted agent could not reach would fault by now.
        self.assertNoNotification(3.5)
        self.assertEqual([], controller.api.list_faults(None))
        # And the restarted agent watches them: a hang is a fault.
        instance, agent = guests[0]
        agent.signal(signal.SIGSTOP)
        self.assertEqual('missed', self.notification(RAISED, instance)['kind'])
        agent.signal(signal.SIGCONT)
        self.notification(CLEARED, instance)

    def test_controller_restart_rebuilds_its_registry(self) -> None:
        controller = self.start_controller()
        instance, agent = self.add_guest()
        self.start_compute()
        self.wait_agent_registered(agent)
        agent.signal(signal.SIGSTOP)
        raised = self.notification(RAISED, instance)
        self.assertEqual(0, controller.stop(signal.SIGTERM))

        # The new controller asks every compute agent for a state report on start.
        restarted = self.useFixture(ControllerProcess(self.rabbit, controller.host, self.tmp,
                                                      controller={'fault_sinks': 'log,notifications'}))
        listed = wait_for(lambda: restarted.api.list_faults(None), TIMEOUT, message='the registry to be rebuilt')
        self.assertEqual([(instance, raised['incident_id'], 'missed', 'active')],
                         [(f['instance_uuid'], f['incident_id'], f['kind'], f['state']) for f in listed])
        agent.signal(signal.SIGCONT)
        cleared = self.notification(CLEARED, instance)
        self.assertEqual((raised['incident_id'], 'recovered'), (cleared['incident_id'], cleared['cleared_by']))
        wait_for(lambda: not restarted.api.list_faults(None), TIMEOUT,
                 message='the fault to clear at the new controller')

    def test_compute_restart_while_hung_keeps_one_incident(self) -> None:
        controller = self.start_controller()
        instance, agent = self.add_guest()
        compute = self.start_compute()
        self.wait_agent_registered(agent)
        agent.signal(signal.SIGSTOP)
        raised = self.notification(RAISED, instance)
        self.assertEqual(0, compute.stop(signal.SIGTERM))
        self.start_compute()
        # The restarted agent reports the still-hung guest again under the same incident: a duplicate.
        time.sleep(QUIET_S + 3.0)  # restart_grace_s
        self.assertEqual([raised['incident_id']], [f['incident_id'] for f in controller.api.list_faults(None)])
        agent.signal(signal.SIGCONT)
        self.assertEqual(raised['incident_id'], self.notification(CLEARED, instance)['incident_id'])
        self.assertNoNotification()
