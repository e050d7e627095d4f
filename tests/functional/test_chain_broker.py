"""A broker restart in the middle of the chain: a fault raised while RabbitMQ is down is not lost."""

from __future__ import annotations

import signal
import time

from testtools import content

from ha_guest.testing import wait_for
from tests.functional.chain import CLEARED, RAISED, ChainTestCase
from tests.functional.private_rabbit import PrivateRabbit

#: Bound of the waits below; a healthy run needs a fraction of it.
RECONNECT_TIMEOUT = 30.0
#: A fault made during the outage is at the controller (and out as a notification) this soon after the
#: broker is back: our services reconnect every second, the reporter retries within half a second, and
#: a report sent before the controller's queue is back fails at once (mandatory) instead of timing out.
RETURN_BOUND_S = 1.5


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
        down = time.monotonic()
        agent.signal(signal.SIGSTOP)
        self.wait_log(compute, '%s: FAULT missed' % instance)  # detected while nobody can be told
        time.sleep(7.0 - (time.monotonic() - down))  # an outage of about 7 s, as an operator's drill makes it
        self.broker.start_app()
        back = time.monotonic()

        raised = self.notification(RAISED, instance, timeout=RECONNECT_TIMEOUT)
        after = time.monotonic() - back
        self.addDetail('after-broker-return', content.text_content('%.2f s' % after))
        self.assertLess(after, RETURN_BOUND_S)
        self.assertEqual('missed', raised['kind'])
        listed = wait_for(lambda: controller.api.list_faults(None), RECONNECT_TIMEOUT,
                          message='the controller to list the fault')
        self.assertEqual([raised['incident_id']], [f['incident_id'] for f in listed])
        agent.signal(signal.SIGCONT)
        self.assertEqual(raised['incident_id'], self.notification(CLEARED, instance)['incident_id'])
