"""Faults and non-faults through the whole chain: guest agent -> compute agent -> controller -> notification."""

from __future__ import annotations

import os
import signal
import time

from ha_guest.testing import wait_for
from tests.functional.chain import CLEARED, COMPUTE_HOST, QUIET_S, RAISED, ChainTestCase
from tests.functional.rabbit import TIMEOUT


class TestChainFaults(ChainTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.controller = self.start_controller()
        self.api = self.controller.api

    def test_hung_guest_is_a_fault_and_recovery_clears_it(self) -> None:
        instance, agent = self.add_guest()
        other, other_agent = self.add_guest()
        self.start_compute()
        self.wait_agent_registered(agent)
        self.wait_agent_registered(other_agent)
        hung_at = time.time()
        agent.signal(signal.SIGSTOP)

        raised = self.notification(RAISED, instance)
        self.assertEqual((COMPUTE_HOST, 'missed', 100, 'active'),
                         (raised['host'], raised['kind'], raised['interval_ms'], raised['state']))
        # Two intervals and a tick at most, plus slack for a busy test machine.
        self.assertLess(raised['detected_at'] - hung_at, 0.5)
        listed = self.api.list_faults(None)
        self.assertEqual([(instance, raised['incident_id'], 'missed', 'active')],
                         [(f['instance_uuid'], f['incident_id'], f['kind'], f['state']) for f in listed])

        agent.signal(signal.SIGCONT)
        cleared = self.notification(CLEARED, instance)
        self.assertEqual((raised['incident_id'], 'recovered', 'cleared'),
                         (cleared['incident_id'], cleared['cleared_by'], cleared['state']))
        self.assertEqual([], self.api.list_faults(None))
        self.assertNoNotification()  # nothing about the other guest, nothing twice

    def test_unhealthy_report_is_a_fault(self) -> None:
        instance, agent = self.add_guest()
        self.start_compute()
        self.wait_agent_registered(agent)
        self.run_client(agent, 'report', 'unhealthy', '--source', 'app', '--reason', 'queue full')
        raised = self.notification(RAISED, instance)
        self.assertEqual(('unhealthy', 'app: queue full'), (raised['kind'], raised['reason']))
        self.assertEqual([instance], [f['instance_uuid'] for f in self.api.list_faults(None)])
        self.run_client(agent, 'report', 'healthy', '--source', 'app')
        self.assertEqual('recovered', self.notification(CLEARED, instance)['cleared_by'])
        self.assertEqual([], self.api.list_faults(None))

    def test_guest_exit_is_no_fault(self) -> None:
        instance, agent = self.add_guest()
        compute = self.start_compute()
        self.wait_agent_registered(agent)
        agent.signal(signal.SIGTERM)
        self.assertEqual(0, agent.wait())
        self.wait_log(compute, '%s: guest ended monitoring' % instance)
        self.assertNoNotification(QUIET_S)
        self.assertEqual([], self.api.list_faults(None))

    def test_pause_and_resume_is_no_fault(self) -> None:
        instance, agent = self.add_guest()
        compute = self.start_compute()
        self.wait_agent_registered(agent)
        marker = os.path.join(self.host_dir, instance + '.suspended')
        open(marker, 'w').close()  # what the libvirt driver learns from a domain event
        self.wait_log(compute, '%s: paused, not watched' % instance)
        agent.signal(signal.SIGSTOP)  # a paused domain's vCPUs do not run
        time.sleep(QUIET_S)
        agent.signal(signal.SIGCONT)
        time.sleep(0.2)  # the vCPUs run again before the domain is reported running
        os.unlink(marker)
        self.wait_log(compute, '%s: running again, watched' % instance)
        self.assertNoNotification(QUIET_S)
        self.assertEqual([], self.api.list_faults(None))
        # Still watched: a hang after the resume is a fault.
        agent.signal(signal.SIGSTOP)
        self.assertEqual('missed', self.notification(RAISED, instance)['kind'])
        agent.signal(signal.SIGCONT)
        self.notification(CLEARED, instance)
        wait_for(lambda: not self.api.list_faults(None), TIMEOUT, message='the fault to clear')
