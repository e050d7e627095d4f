"""Flap damping with a real compute agent and a real guest agent whose health check flips on every run."""

from __future__ import annotations

import os
import time
import uuid

from ha_guest.testing import wait_for
from tests.functional.base import TIMEOUT
from tests.functional.test_compute_agent import ComputeAgentTestCase

FLAP_S = 5.0


class TestFlapping(ComputeAgentTestCase):

    def test_flapping_guest_is_one_incident_closed_after_steady_health(self) -> None:
        self.conf.set_override('flap_max_hold_down_s', 2.0, 'compute')
        manager = self.start_compute()
        instance = str(uuid.uuid4())
        _, guest_socket = self.add_channel(instance)
        toggle, steady = os.path.join(self.tmp, 'toggle'), os.path.join(self.tmp, 'steady')
        open(steady, 'w').close()
        # Healthy and unhealthy in turn, one run every 0.1 s, until the "steady" file exists.
        check = ('test -e {s} && exit 0; if test -e {t}; then rm -f {t}; echo flipped; exit 1; fi; touch {t}'
                 .format(s=steady, t=toggle))
        self.start_agent(guest_socket, checks={'flip': check}, extra=['--check-period', '0.1'])
        self.wait_watched(instance)
        os.unlink(steady)
        fault = wait_for(lambda: self.controller.of('report_fault', instance), TIMEOUT, message='a fault')[0]
        time.sleep(FLAP_S)
        folded = manager.call(lambda: manager.incidents.damper.folded(instance))
        self.assertGreater(folded, 5)  # it did flap, many times
        self.assertEqual([fault['incident_id']], [f['incident_id'] for f in self.controller.of('report_fault')])
        self.assertEqual([], self.controller.of('report_recovery'))
        open(steady, 'w').close()
        recovery = wait_for(lambda: self.controller.of('report_recovery', instance), TIMEOUT,
                            message='the recovery after the hold-down')[0]
        self.assertEqual(fault['incident_id'], recovery['incident_id'])
        self.assertEqual(1, len(self.controller.of('report_fault')))

