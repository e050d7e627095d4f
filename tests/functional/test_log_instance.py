"""One grep follows an instance through the real services' logs: ``[instance: <uuid>] `` on its lines.

Real ha-guest-compute and ha-guest-controller processes on RabbitMQ, logging
with oslo.log's defaults (stderr, ``[DEFAULT] instance_uuid_format``), a real
guest agent on an emulated channel that hangs and comes back.
"""

from __future__ import annotations

import re
import signal

from tests.functional.chain import CLEARED, RAISED, ChainTestCase


class TestInstanceInLogs(ChainTestCase):

    def test_fault_lines_carry_the_instance_in_every_service(self) -> None:
        controller = self.start_controller()
        instance, agent = self.add_guest()
        other, other_agent = self.add_guest()
        compute = self.start_compute()
        self.wait_agent_registered(agent)
        self.wait_agent_registered(other_agent)
        agent.signal(signal.SIGSTOP)
        incident = self.notification(RAISED, instance)['incident_id']
        agent.signal(signal.SIGCONT)
        self.notification(CLEARED, instance)
        prefix = '[instance: %s] ' % instance

        # The controller's log sink: the fault and its end, each with the prefix.
        self.wait_log(controller, prefix + 'Heartbeat fault cleared')
        self.assertIn(prefix + 'Heartbeat fault raised: instance %s' % instance, controller.log())
        # The compute agent: the channel it found, the fault (rate-limited per instance) and the recovery.
        self.wait_log(compute, '%s%s: recovered (incident %s)' % (prefix, instance, incident))
        compute_log = compute.log()
        self.assertIn('%s%s: channel found at ' % (prefix, instance), compute_log)
        self.assertIn('%s%s: FAULT missed (incident %s)' % (prefix, instance, incident), compute_log)

        # grep <uuid>: every line naming the instance carries its prefix; no line of the other
        # instance carries this one's.
        for service in (compute, controller):
            lines = [line for line in service.log().splitlines() if instance in line]
            self.assertTrue(lines, service.name)
            self.assertEqual([], [line for line in lines if prefix not in line], service.name)
            self.assertEqual([], [line for line in service.log().splitlines()
                                  if other in line and prefix in line], service.name)

    def test_version_and_options_at_start_secrets_masked(self) -> None:
        controller = self.start_controller()
        compute = self.start_compute()
        self.wait_log(compute, 'ha-guest-compute started')
        for service, prog in ((compute, 'ha-guest-compute'), (controller, 'ha-guest-controller')):
            log = service.log()
            self.assertRegex(log, r'%s \S+ starting \(pid \d+, Python 3\.' % re.escape(prog))
            # oslo.config's log_opt_values: one line per option, the broker password masked.
            self.assertRegex(log, r'transport_url\s+= \*\*\*\*')
            self.assertIn('rpc.controller_topic', log)
            self.assertNotIn('guest:guest@', log)
