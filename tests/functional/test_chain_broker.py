"""A broker restart in the middle of the chain: a fault raised while RabbitMQ is down is not lost."""

from __future__ import annotations

import signal

from ha_guest.testing import wait_for
from tests.functional.chain import CLEARED, RAISED, ChainTestCase
from tests.functional.private_rabbit import PrivateRabbit

#: Reconnections back off (the compute agent's reporter up to 5 s, oslo.messaging's consumers a few s).
RECONNECT_TIMEOUT = 30.0


class TestChainBrokerRestart(ChainTestCase):

    def broker_url(self) -> str:
        # Not the shared broker: other tests use it meanwhile.
        self.broker = self.useFixture(PrivateRabbit())
        return self.broker.url

    def test_fault_raised_while_the_broker_is_down_arrives_after(self) -> None:
        controller = self.start_controller()
        instance, agent = self.add_guest()
        compute = self.start_compute()
        self.wait_agent_registered(agent)

        self.broker.stop_app()
        agent.signal(signal.SIGSTOP)
        self.wait_log(compute, '%s: FAULT missed' % instance)  # detected while nobody can be told
        self.broker.start_app()

        raised = self.notification(RAISED, instance, timeout=RECONNECT_TIMEOUT)
        self.assertEqual('missed', raised['kind'])
        listed = wait_for(lambda: controller.api.list_faults(None), RECONNECT_TIMEOUT,
                          message='the controller to list the fault')
        self.assertEqual([raised['incident_id']], [f['incident_id'] for f in listed])
        agent.signal(signal.SIGCONT)
        self.assertEqual(raised['incident_id'], self.notification(CLEARED, instance)['incident_id'])
