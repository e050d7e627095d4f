"""Recovery exactly once when the controller carrying it out is killed (kill -9) at some moment.

The recovery intent is a message on the broker: the controller that carries it
out acknowledges it only once the action was decided, so a kill before that
hands it to the other controller (or to the same one, restarted), which asks
Nova whether the action was taken already. The stand-in Nova records every
action; each moment below must end with exactly one hard reboot.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from ha_guest.nova import specs
from ha_guest.testing import wait_for
from ha_guest.testing.openstack_stub import Server, nova_api_options
from tests.functional.controller.played_compute import PlayedCompute
from tests.functional.rabbit import TIMEOUT, ControllerProcess
from tests.functional.test_recovery import RecoveryTestCase, make_fault

#: How long the stand-in Nova takes over the call the controller is killed in.
SLOW_S = 1.0
#: What a controller that does not know an intent's incident waits for (no compute agent here answers).
UNKNOWN_WAIT_S = 0.5


class TestRecoveryAcrossKill(RecoveryTestCase):

    def start(self, host: str) -> ControllerProcess:
        return self.start_controller(host, recovery={'unknown_incident_wait_s': UNKNOWN_WAIT_S})

    def carrier(self, fault: dict[str, Any], *controllers: ControllerProcess) -> ControllerProcess:
        """Wait until one of ``controllers`` logs that it carries out the fault's intent; return it."""
        found: list[ControllerProcess] = []
        needle = '%s/%s' % (fault['instance_uuid'], fault['incident_id'])

        def logged() -> bool:
            found[:] = [c for c in controllers
                        if any('recovery intent from' in line and needle in line for line in c.log().splitlines())]
            return bool(found)

        wait_for(logged, TIMEOUT, message='a controller to take the recovery intent')
        return found[0]

    def reboots(self, server: Server) -> int:
        return len([a for a in self.stub.actions(server.uuid) if a.body == {'reboot': {'type': 'HARD'}}])

    def assert_one_reboot(self, server: Server, survivor: ControllerProcess, moment: str) -> None:
        self.assertTrue(self.stub.wait_for(lambda: self.reboots(server) >= 1, TIMEOUT + SLOW_S),
                        'no reboot after a kill at moment %s' % moment)
        # Redelivered and decided: acted (the reboot had not been issued) or already_done (Nova shows it).
        wait_for(lambda: 'done: a hard reboot' in survivor.log() or 'nothing to do: Nova shows a reboot'
                 in survivor.log() or self.reboots(server) > 1, TIMEOUT, message='the survivor to decide')
        time.sleep(1.0)
        self.assertEqual(1, self.reboots(server), 'moment %s: %s' % (moment, self.stub.actions(server.uuid)))
        self.assertEqual(1, len(self.stub.instance_actions(server.uuid, 'reboot')))
        (reboot,) = self.stub.actions(server.uuid)
        decided = 'already_done' if 'nothing to do: Nova shows a reboot' in survivor.log() else 'acted'
        print('\nkill -9 at %s: 1 reboot, %+.0f ms from the kill; the survivor %s' % (
            moment, (reboot.at - self.killed_at) * 1e3, decided))

    def kill_at(self, moment: str, get_delay: float = 0.0, action_delay: float = 0.0,
                restart: bool = False) -> None:
        """Report a fault, kill -9 the controller carrying it out at ``moment``; the other must recover it."""
        # The compute agent's side: answers a restarted controller's request for a state report.
        compute = self.useFixture(PlayedCompute(self.rabbit))
        first = self.start('ctl-a')
        second = None if restart else self.start('ctl-b')
        server = self.server(specs.RECOVERY_REBOOT, get_delay=get_delay, action_delay=action_delay)
        fault = make_fault(server)
        compute.open(fault)
        self.assertEqual({'duplicate': False}, first.api.report_fault(None, fault))
        compute.announce(fault)
        if moment == 'accepted':
            victim = first  # the intent is on the broker, maybe not yet taken by anyone
        else:
            victim = self.carrier(fault, *[c for c in (first, second) if c is not None])
            if moment == 'in_flight':
                self.assertTrue(self.stub.wait_for(lambda: self.reboots(server) >= 1, TIMEOUT))
        self.killed_at = time.monotonic()
        victim.stop(signal.SIGKILL)
        survivor = second if victim is first else first
        if survivor is None or restart:
            # The same controller started again (a fresh registry: the incident is unknown to it).
            survivor = self.useFixture(ControllerProcess(
                self.rabbit, victim.host, self.tmp, controller={'fault_sinks': ['log', 'recovery', 'masakari']},
                nova_api=nova_api_options(self.stub), recovery={'unknown_incident_wait_s': UNKNOWN_WAIT_S}))
        assert survivor is not None
        self.assert_one_reboot(server, survivor, moment)

    def test_killed_while_looking_the_instance_up(self) -> None:
        self.kill_at('lookup', get_delay=SLOW_S)

    def test_killed_while_the_reboot_is_in_flight(self) -> None:
        self.kill_at('in_flight', action_delay=SLOW_S)

    def test_killed_right_after_accepting(self) -> None:
        self.kill_at('accepted')

    def test_killed_and_restarted_alone(self) -> None:
        self.kill_at('lookup', get_delay=SLOW_S, restart=True)

    def test_killed_and_restarted_alone_reboot_in_flight(self) -> None:
        self.kill_at('in_flight', action_delay=SLOW_S, restart=True)
