"""Watchers: silent compute agents and unregistered guests, announced once across controllers (fake clock)."""

from __future__ import annotations

import copy
from typing import Any, Optional

import testtools

from ha_guest.controller import host_faults as hf
from ha_guest.controller.agent_watch import AgentTable
from ha_guest.controller.watchers import Watchers
from tests.messaging import ConfFixture

BEAT = 1.0
DOWN = 10.0


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sinks:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def watch_event(self, event_type: str, payload: dict[str, Any]) -> None:
        self.events.append((event_type, copy.deepcopy(payload)))

    def types(self) -> list[str]:
        return [event for event, _ in self.events]


class Bus:
    """An in-memory fanout that can hold messages back and replay them (stream fanout after a reconnect)."""

    def __init__(self) -> None:
        self.members: list[Watchers] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.down = False

    def cast(self, origin: str, beat: dict[str, Any]) -> None:
        if self.down:
            raise ConnectionError('broker down')
        self.sent.append((origin, copy.deepcopy(beat)))
        for member in list(self.members):
            member.sync_watch(origin, copy.deepcopy(beat))

    def replay(self) -> None:
        for origin, beat in list(self.sent):
            for member in list(self.members):
                member.sync_watch(origin, copy.deepcopy(beat))


class BusPeers:
    def __init__(self, origin: str, bus: Bus, cap: Optional[str] = None) -> None:
        self.origin = origin
        self.bus = bus
        self.cap = cap

    def can_send_version(self, version: str) -> bool:
        return self.cap is None or tuple(map(int, version.split('.'))) <= tuple(map(int, self.cap.split('.')))

    def sync_watch(self, beat: dict[str, Any], retry: Optional[int] = None) -> None:
        self.bus.cast(self.origin, beat)


def report(host: str, at: float, instances: Optional[list[dict[str, Any]]] = None,
           interval: Optional[float] = 1.0) -> dict[str, Any]:
    data: dict[str, Any] = {'host': host, 'at': at, 'instances': instances or []}
    if interval is not None:
        data['agent'] = {'version': '1.0', 'started_at': at - 100, 'report_interval_s': interval}
    return data


def unregistered(instance_uuid: str, since: float) -> dict[str, Any]:
    return {'instance_uuid': instance_uuid, 'state': 'monitoring', 'interval_ms': 100, 'registered': False,
            'since': since}


def registered(instance_uuid: str) -> dict[str, Any]:
    return {'instance_uuid': instance_uuid, 'state': 'monitoring', 'interval_ms': 100, 'registered': True}


class WatchersTestCase(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(ConfFixture(host='ctl')).conf
        self.conf.set_override('agent_down_time_s', DOWN, group='controller')
        self.conf.set_override('peer_beat_interval_s', BEAT, group='controller')
        self.conf.set_override('registration_timeout_s', 30.0, group='controller')
        self.clock = Clock()
        self.bus = Bus()

    def controller(self, origin: str, cap: Optional[str] = None) -> tuple[Watchers, Sinks]:
        sinks = Sinks()
        watchers = Watchers(self.conf, origin, sinks, BusPeers(origin, self.bus, cap), self.clock)
        watchers.leader.started_at = self.clock.now
        self.bus.members.append(watchers)
        return watchers, sinks

    def run_for(self, seconds: float, controllers: list[Watchers], step: float = 0.25,
                reports: Optional[dict[str, Watchers]] = None, interval: float = 1.0) -> None:
        """Advance the clock; ``reports`` host -> the controller that receives that agent's reports."""
        end = self.clock.now + seconds
        next_report = self.clock.now
        while self.clock.now < end:
            self.clock.now += step
            if reports and self.clock.now >= next_report:
                next_report = self.clock.now + interval
                for host, receiver in reports.items():
                    receiver.report_state(report(host, self.clock.now))
            for watchers in controllers:
                watchers.tick()


class TestAgentTable(testtools.TestCase):

    def test_newest_report_wins_whoever_received_it(self) -> None:
        table = AgentTable()
        table.observe(report('cmp-1', 10.0, [unregistered('i-1', 5.0)]), 100.0)
        table.merge([{'host': 'cmp-1', 'seen_at': 90.0, 'report_at': 5.0, 'interval_s': 1.0, 'version': None,
                      'unregistered': {}, 'left': {}}])
        record = table.get('cmp-1')
        self.assertEqual((100.0, 10.0, {'i-1': 5.0}), (record.seen_at, record.report_at, record.unregistered))
        table.merge([{'host': 'cmp-1', 'seen_at': 120.0, 'report_at': 30.0, 'interval_s': 2.0, 'version': None,
                      'unregistered': {}, 'left': {'i-1': 'gone'}}])
        record = table.get('cmp-1')
        self.assertEqual((120.0, 2.0, {}), (record.seen_at, record.interval_s, record.unregistered))
        self.assertEqual('gone', table.left_reason('cmp-1', 'i-1'))

    def test_left_reason_from_the_report(self) -> None:
        table = AgentTable()
        table.observe(report('cmp-1', 10.0, [unregistered('i-1', 5.0), unregistered('i-2', 5.0)]), 100.0)
        table.observe(report('cmp-1', 20.0, [registered('i-1')]), 110.0)
        self.assertEqual('registered', table.left_reason('cmp-1', 'i-1'))
        self.assertEqual('gone', table.left_reason('cmp-1', 'i-2'))

    def test_malformed_reports_and_entries(self) -> None:
        table = AgentTable()
        self.assertIsNone(table.observe({'at': 1.0}, 1.0))
        self.assertIsNone(table.observe('nonsense', 1.0))
        self.assertEqual('cmp-1', table.observe({'host': 'cmp-1', 'at': 'bad', 'instances': 'bad'}, 7.0))
        table.merge([{'host': 'x'}, None, {'host': 'y', 'seen_at': 1, 'report_at': 1, 'unregistered': {'a': 'b'},
                                             'left': {}}])
        self.assertEqual(['cmp-1'], table.hosts())


class TestSilentAgent(WatchersTestCase):

    def test_one_controller_raises_once_and_clears_once(self) -> None:
        ctl, sinks = self.controller('a')
        ctl.report_state(report('cmp-1', self.clock.now))
        self.run_for(DOWN, [ctl])
        self.assertEqual([], sinks.events)  # within agent_down_time_s: nothing
        self.run_for(3.0, [ctl])
        self.assertEqual([hf.EVENT_HOST_FAULT_RAISED], sinks.types())
        raised = sinks.events[0][1]
        self.assertEqual({'host': 'cmp-1', 'kind': 'agent_silent', 'state': 'active', 'cleared_at': None,
                          'cleared_by': None, 'last_report_at': 1000.0},
                         {k: raised[k] for k in ('host', 'kind', 'state', 'cleared_at', 'cleared_by',
                                                 'last_report_at')})
        self.assertLessEqual(raised['detected_at'] - 1000.0, DOWN + 0.5)
        self.assertEqual([raised], ctl.list_host_faults())
        self.run_for(20.0, [ctl])
        self.assertEqual(1, len(sinks.events))  # still silent: raised once
        ctl.report_state(report('cmp-1', self.clock.now))
        self.run_for(0.5, [ctl])
        self.assertEqual([hf.EVENT_HOST_FAULT_RAISED, hf.EVENT_HOST_FAULT_CLEARED], sinks.types())
        cleared = sinks.events[1][1]
        self.assertEqual((raised['incident_id'], 'cleared', 'reported'),
                         (cleared['incident_id'], cleared['state'], cleared['cleared_by']))
        self.assertEqual([], ctl.list_host_faults())

    def test_a_live_agent_raises_nothing(self) -> None:
        ctl, sinks = self.controller('a')
        self.run_for(60.0, [ctl], reports={'cmp-1': ctl, 'cmp-2': ctl})
        self.assertEqual([], sinks.events)

    def test_slow_reporter_gets_two_of_its_intervals(self) -> None:
        ctl, sinks = self.controller('a')
        ctl.report_state(report('cmp-1', self.clock.now, interval=30.0))
        self.run_for(2 * 30.0, [ctl])
        self.assertEqual([], sinks.events)
        self.run_for(2.0, [ctl])
        self.assertEqual([hf.EVENT_HOST_FAULT_RAISED], sinks.types())

    def test_two_controllers_one_raise_one_clear_and_reports_spread_over_both(self) -> None:
        ctl_a, sinks_a = self.controller('a')
        ctl_b, sinks_b = self.controller('b')
        # cmp-1 reports only to b, cmp-2 only to a: the leader (a) learns cmp-1 from b's beats.
        self.run_for(30.0, [ctl_a, ctl_b], reports={'cmp-1': ctl_b, 'cmp-2': ctl_a})
        self.assertEqual([], sinks_a.events + sinks_b.events)
        self.run_for(DOWN + 3, [ctl_a, ctl_b], reports={'cmp-2': ctl_a})  # cmp-1 dies
        self.assertEqual([hf.EVENT_HOST_FAULT_RAISED], sinks_a.types())
        self.assertEqual([], sinks_b.events)
        self.assertEqual(ctl_a.list_host_faults(), ctl_b.list_host_faults())  # b adopted the leader's alarm
        self.run_for(5.0, [ctl_a, ctl_b], reports={'cmp-1': ctl_b, 'cmp-2': ctl_a})  # back, reporting to b
        self.assertEqual([hf.EVENT_HOST_FAULT_RAISED, hf.EVENT_HOST_FAULT_CLEARED], sinks_a.types())
        self.assertEqual([], sinks_b.events)
        self.assertEqual([], ctl_b.list_host_faults())

    def test_leader_killed_the_other_takes_over_without_a_second_raise(self) -> None:
        ctl_a, sinks_a = self.controller('a')
        ctl_b, sinks_b = self.controller('b')
        self.run_for(10.0, [ctl_a, ctl_b], reports={'cmp-1': ctl_a})
        self.run_for(DOWN + 3, [ctl_a, ctl_b])
        self.assertEqual([hf.EVENT_HOST_FAULT_RAISED], sinks_a.types())
        self.bus.members.remove(ctl_a)  # kill -9 of the leader
        self.run_for(30.0, [ctl_b])
        self.assertEqual([], sinks_b.events)  # b knew the fault: no second raise
        self.run_for(3.0, [ctl_b], reports={'cmp-1': ctl_b})
        self.assertEqual([hf.EVENT_HOST_FAULT_CLEARED], sinks_b.types())
        self.assertEqual(sinks_a.events[0][1]['incident_id'], sinks_b.events[0][1]['incident_id'])

    def test_restarted_controller_learns_the_open_fault_before_it_decides(self) -> None:
        ctl_a, sinks_a = self.controller('b-old')
        ctl_c, sinks_c = self.controller('c')
        self.run_for(10.0, [ctl_a, ctl_c], reports={'cmp-1': ctl_a})
        self.run_for(DOWN + 3, [ctl_a, ctl_c])
        self.assertEqual([hf.EVENT_HOST_FAULT_RAISED], sinks_a.types())
        self.bus.members.remove(ctl_a)
        # Restarted with a smaller origin: it becomes the leader once settled, knowing the open fault.
        ctl_new, sinks_new = self.controller('a-new')
        self.run_for(40.0, [ctl_c, ctl_new])
        self.assertEqual([], sinks_c.events + sinks_new.events)
        self.assertTrue(ctl_new.leader.leads(self.clock.now))
        self.run_for(3.0, [ctl_c, ctl_new], reports={'cmp-1': ctl_c})
        self.assertEqual([hf.EVENT_HOST_FAULT_CLEARED], sinks_new.types())
        self.assertEqual([], sinks_c.events)

    def test_replayed_beats_change_nothing(self) -> None:
        ctl_a, sinks_a = self.controller('a')
        ctl_b, sinks_b = self.controller('b')
        self.run_for(10.0, [ctl_a, ctl_b], reports={'cmp-1': ctl_a})
        self.run_for(DOWN + 3, [ctl_a, ctl_b])
        self.run_for(3.0, [ctl_a, ctl_b], reports={'cmp-1': ctl_a})
        self.assertEqual([hf.EVENT_HOST_FAULT_RAISED, hf.EVENT_HOST_FAULT_CLEARED], sinks_a.types())
        self.bus.replay()  # every beat again, the old leader's "fault open" ones too
        self.assertEqual([], ctl_b.list_host_faults())
        self.run_for(5.0, [ctl_a, ctl_b], reports={'cmp-1': ctl_a})
        self.assertEqual(2, len(sinks_a.events))
        self.assertEqual([], sinks_b.events)

    def test_broker_outage_delays_beats_without_a_false_alarm(self) -> None:
        ctl_a, sinks_a = self.controller('a')
        ctl_b, sinks_b = self.controller('b')
        self.run_for(5.0, [ctl_a, ctl_b], reports={'cmp-1': ctl_b})
        self.bus.down = True
        self.run_for(4.0, [ctl_a, ctl_b], reports={'cmp-1': ctl_b})
        self.bus.down = False
        self.run_for(20.0, [ctl_a, ctl_b], reports={'cmp-1': ctl_b})
        self.assertEqual([], sinks_a.events + sinks_b.events)

    def test_version_cap_below_1_2_turns_the_watch_off(self) -> None:
        ctl, sinks = self.controller('a', cap='1.1')
        ctl.report_state(report('cmp-1', self.clock.now))
        self.run_for(DOWN * 3, [ctl])
        self.assertEqual([], sinks.events)
        self.assertEqual([], self.bus.sent)


class TestUnregistered(WatchersTestCase):

    def start(self, alarm: bool) -> tuple[Watchers, Sinks]:
        self.conf.set_override('alarm_unregistered', alarm, group='controller')
        return self.controller('a')

    def test_listed_always_announced_once_when_opted_in(self) -> None:
        ctl, sinks = self.start(alarm=True)
        since = self.clock.now
        for _ in range(40):
            ctl.report_state(report('cmp-1', self.clock.now, [unregistered('i-1', since), registered('i-2')]))
            self.run_for(1.0, [ctl])
        self.assertEqual([hf.EVENT_UNREGISTERED_RAISED], sinks.types())
        raised = sinks.events[0][1]
        self.assertEqual(('i-1', 'cmp-1', 'unregistered', since), (raised['instance_uuid'], raised['host'],
                                                                 raised['kind'], raised['since']))
        [listed] = ctl.list_unregistered()
        self.assertEqual(('i-1', True, raised['incident_id']), (listed['instance_uuid'], listed['overdue'],
                                                                listed['alarm']['incident_id']))
        ctl.report_state(report('cmp-1', self.clock.now, [registered('i-1'), registered('i-2')]))
        self.run_for(1.0, [ctl])
        self.assertEqual([hf.EVENT_UNREGISTERED_RAISED, hf.EVENT_UNREGISTERED_CLEARED], sinks.types())
        self.assertEqual('registered', sinks.events[1][1]['cleared_by'])
        self.assertEqual([], ctl.list_unregistered())

    def test_gone_instance_clears(self) -> None:
        ctl, sinks = self.start(alarm=True)
        ctl.report_state(report('cmp-1', self.clock.now, [unregistered('i-1', self.clock.now - 60)]))
        self.run_for(4.0, [ctl])  # settled, then the leader
        self.assertEqual([hf.EVENT_UNREGISTERED_RAISED], sinks.types())
        ctl.report_state(report('cmp-1', self.clock.now, []))
        self.run_for(1.0, [ctl])
        self.assertEqual('gone', sinks.events[1][1]['cleared_by'])

    def test_not_announced_unless_opted_in(self) -> None:
        ctl, sinks = self.start(alarm=False)
        ctl.report_state(report('cmp-1', self.clock.now, [unregistered('i-1', self.clock.now - 60)]))
        self.run_for(5.0, [ctl], reports={})
        self.assertEqual([], sinks.events)
        [listed] = ctl.list_unregistered()
        self.assertEqual(('i-1', True, None), (listed['instance_uuid'], listed['overdue'], listed['alarm']))

    def test_two_controllers_announce_once(self) -> None:
        self.conf.set_override('alarm_unregistered', True, group='controller')
        ctl_a, sinks_a = self.controller('a')
        ctl_b, sinks_b = self.controller('b')
        since = self.clock.now
        for _ in range(40):
            ctl_b.report_state(report('cmp-1', self.clock.now, [unregistered('i-1', since)]))
            self.run_for(1.0, [ctl_a, ctl_b])
        self.assertEqual([hf.EVENT_UNREGISTERED_RAISED], sinks_a.types())
        self.assertEqual([], sinks_b.events)
        self.assertEqual(ctl_a.list_unregistered(), ctl_b.list_unregistered())
