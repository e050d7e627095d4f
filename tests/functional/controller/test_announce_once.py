"""Each incident announced once to every sink: across a controller kill -9 and restart, and between two
controllers whose peer sync races with the state reports. Real controller processes on a real RabbitMQ;
the compute agent's RPC side is played by the test (tests/functional/controller/played_compute.py)."""

from __future__ import annotations

import collections
import queue
import signal
import time
from typing import Any

from ha_guest.sinks import base
from ha_guest.testing import wait_for
from tests.functional.controller.played_compute import PlayedCompute
from tests.functional.controller.test_controller import ControllerTestCase, make_fault, recovery_of
from tests.functional.rabbit import TIMEOUT, ControllerProcess
from tests.messaging import NotificationCollector

RAISED, CLEARED = base.EVENT_FAULT_RAISED, base.EVENT_FAULT_CLEARED
#: Seconds the tests wait to be sure that nothing more is announced.
QUIET_S = 1.5
SINKS = {'controller': {'fault_sinks': 'log,notifications'}}


def drain(collector: NotificationCollector, wait: float) -> list[dict[str, Any]]:
    """Every notification arriving within ``wait`` seconds (until ``wait`` passes without one)."""
    got = []
    while True:
        try:
            got.append(collector.received.get(timeout=wait))
        except queue.Empty:
            return got


class TestAnnouncedOnce(ControllerTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.notes = self.listen(self.rabbit.conf.sink_notifications.topics)
        self.compute = self.useFixture(PlayedCompute(self.rabbit))

    def collect(self, count: int) -> list[dict[str, Any]]:
        got = [self.notes.get(TIMEOUT) for _ in range(count)]
        return got + drain(self.notes, QUIET_S)

    def test_kill_9_and_restart_announces_nothing_again(self) -> None:
        controller = self.start_controller('ctl-a', **SINKS)
        api = self.rabbit.controller_api()
        faults = [make_fault() for _ in range(10)]
        for fault in faults:
            self.compute.open(fault)
            self.assertEqual({'duplicate': False}, api.report_fault(None, fault))
            self.compute.announce(fault)
        raised = self.collect(len(faults))
        self.assertEqual([RAISED] * len(faults), [n['event_type'] for n in raised])

        controller.stop(signal.SIGKILL)
        restarted = self.useFixture(ControllerProcess(self.rabbit, 'ctl-a', self.tmp, **SINKS))
        # It asked every agent for a state report on start, and re-learned the announced incidents from it.
        wait_for(lambda: len(restarted.api.list_faults(None)) == len(faults), TIMEOUT,
                 message='the restarted controller to re-learn the open incidents')
        self.assertGreaterEqual(self.compute.requests, 1)
        relearned = {f['incident_id']: f['detected_at'] for f in restarted.api.list_faults(None)}
        self.assertEqual({f['incident_id']: f['detected_at'] for f in faults}, relearned)
        self.assertEqual([], drain(self.notes, QUIET_S), 'incidents announced again after the restart')
        self.assertIn('re-learned (announced already)', restarted.log())

        # Their ends are announced, once each.
        for fault in faults:
            self.compute.close(fault)
            api.report_recovery(None, recovery_of(fault))
        cleared = self.collect(len(faults))
        self.assertEqual(sorted(f['incident_id'] for f in faults),
                         sorted(n['payload']['incident_id'] for n in cleared if n['event_type'] == CLEARED))
        self.assertEqual(len(faults), len(cleared))

    def test_answer_lost_with_the_killed_controller_retry_announces_nothing_again(self) -> None:
        # The controller told its sinks, then died (kill -9) before its answer reached the agent: the agent's
        # state reports still say "not acknowledged" and it sends the same reports again, to the restarted
        # controller. Its announce journal knows the sinks took them.
        controller = self.start_controller('ctl-a', **SINKS)
        api = self.rabbit.controller_api()
        faults = [make_fault() for _ in range(5)]
        for fault in faults:
            self.compute.open(fault)  # never announced: the answer is lost below
            api.report_fault(None, fault)
        self.assertEqual([RAISED] * len(faults), [n['event_type'] for n in self.collect(len(faults))])
        controller.stop(signal.SIGKILL)

        restarted = self.useFixture(ControllerProcess(self.rabbit, 'ctl-a', self.tmp, **SINKS))
        wait_for(lambda: self.compute.requests >= 1, TIMEOUT, message='the restarted controller to ask for a '
                 'state report')
        self.assertEqual([], restarted.api.list_faults(None))  # unacknowledged: left to the agent's retry
        for fault in faults:
            self.assertEqual({'duplicate': False}, api.report_fault(None, fault))  # new to this run
            self.compute.announce(fault)
        self.assertEqual(len(faults), len(restarted.api.list_faults(None)))
        self.assertEqual([], drain(self.notes, QUIET_S), 'incidents announced again after the restart')
        self.assertEqual(len(faults), restarted.log().count('told before a restart (announce journal)'))
        # A new incident is told as ever, and the ends of the old ones once each.
        fresh = make_fault()
        self.compute.open(fresh)
        api.report_fault(None, fresh)
        for fault in faults:
            self.compute.close(fault)
            api.report_recovery(None, recovery_of(fault))
        got = self.collect(len(faults) + 1)
        self.assertEqual({(fresh['incident_id'], RAISED)} | {(f['incident_id'], CLEARED) for f in faults},
                         {(n['payload']['incident_id'], n['event_type']) for n in got})
        self.assertEqual(len(faults) + 1, len(got))

    def test_without_the_journal_the_retry_is_announced_again(self) -> None:
        # The control: the same drill with [controller] announce_journal empty doubles every raise.
        sinks = {'controller': dict(SINKS['controller'], announce_journal='')}
        controller = self.start_controller('ctl-a', **sinks)
        api = self.rabbit.controller_api()
        fault = make_fault()
        self.compute.open(fault)
        api.report_fault(None, fault)
        self.assertEqual([RAISED], [n['event_type'] for n in self.collect(1)])
        controller.stop(signal.SIGKILL)
        self.useFixture(ControllerProcess(self.rabbit, 'ctl-a', self.tmp, **sinks))
        api.report_fault(None, fault)
        self.assertEqual([RAISED], [n['event_type'] for n in self.collect(1)])

    def test_two_controllers_with_racing_state_reports(self) -> None:
        first = self.start_controller('ctl-a', **SINKS)
        second = self.start_controller('ctl-b', **SINKS)
        api = self.rabbit.controller_api()  # the topic: reports spread over both controllers
        self.compute.report_every(0.01)
        faults = []
        for _ in range(30):
            fault = make_fault()
            faults.append(fault)
            self.compute.open(fault)  # in the state reports from now on, not yet acknowledged
            self.assertEqual({'duplicate': False}, api.report_fault(None, fault))
            self.compute.announce(fault)
        time.sleep(0.3)  # state reports with every incident announced reach both controllers
        for fault in faults:
            self.compute.close(fault)  # gone from the state reports before its recovery report arrives
            api.report_recovery(None, recovery_of(fault))
        time.sleep(0.3)
        self.compute.stop_reporting()
        got = self.collect(2 * len(faults))

        counts = collections.Counter((n['payload']['incident_id'], n['event_type']) for n in got)
        for fault in faults:
            self.assertEqual(1, counts.pop((fault['incident_id'], RAISED), 0), fault['incident_id'])
            self.assertEqual(1, counts.pop((fault['incident_id'], CLEARED), 0), fault['incident_id'])
        self.assertEqual({}, dict(counts))
        print('\n%d state reports raced with 30 faults and 30 recoveries over two controllers: 30 raised, '
              '30 cleared' % self.compute.sent)
        # Both controllers took part.
        self.assertIn('ha_guest.controller.ctl-a', {n['publisher_id'] for n in got})
        self.assertIn('ha_guest.controller.ctl-b', {n['publisher_id'] for n in got})
        self.assertEqual([], first.api.list_faults(None))
        self.assertEqual([], second.api.list_faults(None))
