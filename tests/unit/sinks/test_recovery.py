"""The recovery and masakari sinks' decisions: policy, once per incident, cleared faults, timeouts, errors."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Callable, Optional

import fixtures
import testtools
from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as sdk_exceptions
from openstack.compute.v2.server import Server
from openstack.compute.v2.server_action import ServerAction

from ha_guest.sinks import base
from ha_guest.sinks.masakari import MasakariSink, vm_notification
from ha_guest.sinks.recovery import (
    ACTED,
    ALREADY_DONE,
    FAILED,
    SKIPPED,
    ActionSink,
    RecoverySink,
    iso_utc,
    parse_time,
)
from ha_guest.sinks.recovery_policy import PolicyLookup, PolicyUnknown, policy_of
from tests.messaging import ConfFixture

WAIT = 5.0


def server(extra_specs: Optional[dict[str, str]] = None, embedded: bool = True) -> Server:
    """An openstacksdk Server as Nova returns it (embedded flavor from microversion 2.47 on)."""
    if not embedded:
        flavor: dict[str, Any] = {'id': 'f-1', 'links': []}
    else:
        flavor = {'original_name': 'm1.ha', 'vcpus': 1, 'ram': 512}
        if extra_specs is not None:
            flavor['extra_specs'] = extra_specs
    return Server(id=str(uuid.uuid4()), flavor=flavor, status='ACTIVE')


def make_fault(instance: Optional[str] = None, incident: Optional[str] = None, **extra: Any) -> dict[str, Any]:
    fault = {'instance_uuid': instance or str(uuid.uuid4()), 'host': 'cmp-1', 'incident_id': incident or 'inc-1',
             'kind': 'missed', 'reason': 'no answer', 'detected_at': time.time(), 'interval_ms': 100, 'misses': 1,
             base.RAISED_BY: base.RAISED_BY_REPORT}
    fault.update(extra)
    return fault


class FakeCompute:
    """The part of openstacksdk's compute proxy the sinks use; records calls."""

    def __init__(self) -> None:
        self.servers: dict[str, Server] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.get_error: Optional[BaseException] = None
        self.action_error: Optional[BaseException] = None
        self.on_get: Optional[Callable[[str], None]] = None
        #: Nova's instance actions per server: ServerAction-like objects.
        self.instance_actions: dict[str, list[Any]] = {}
        self.actions_error: Optional[BaseException] = None

    def add(self, extra_specs: Optional[dict[str, str]] = None, embedded: bool = True) -> str:
        srv = server(extra_specs, embedded)
        self.servers[srv.id] = srv
        return srv.id

    def get_server(self, instance_uuid: str) -> Server:
        self.calls.append(('get', instance_uuid))
        if self.on_get is not None:
            self.on_get(instance_uuid)
        if self.get_error is not None:
            raise self.get_error
        if instance_uuid not in self.servers:
            raise sdk_exceptions.NotFoundException('No Server found for %s' % instance_uuid)
        return self.servers[instance_uuid]

    def record_action(self, instance_uuid: str, name: str, at: Optional[float] = None) -> None:
        """Nova records an instance action (as its API does before it answers)."""
        action = ServerAction(action=name, request_id='req-%s' % uuid.uuid4(),
                              start_time=iso_utc(time.time() if at is None else at))
        self.instance_actions.setdefault(instance_uuid, []).append(action)

    def server_actions(self, instance_uuid: str, changes_since: Optional[str] = None) -> list[Any]:
        self.calls.append(('actions', instance_uuid, changes_since))
        if self.actions_error is not None:
            raise self.actions_error
        return [a for a in self.instance_actions.get(instance_uuid, [])
                if changes_since is None or a.start_time >= changes_since]

    def reboot_server(self, instance_uuid: str, reboot_type: str) -> None:
        self.calls.append(('reboot', instance_uuid, reboot_type))
        if self.action_error is not None:
            raise self.action_error
        self.record_action(instance_uuid, 'reboot')

    def stop_server(self, instance_uuid: str) -> None:
        self.calls.append(('stop', instance_uuid))
        if self.action_error is not None:
            raise self.action_error
        self.record_action(instance_uuid, 'stop')

    def get_endpoint_data(self) -> None:
        self.calls.append(('warm-up',))

    def actions(self) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] in ('reboot', 'stop')]

    def gets(self) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == 'get']


class FakeInstanceHA:
    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.error: Optional[BaseException] = None

    def create_notification(self, **attrs: Any) -> None:
        if self.error is not None:
            raise self.error
        self.notifications.append(attrs)

    def get_endpoint(self) -> str:
        return 'http://masakari/v1'


class FakeConnection:
    def __init__(self) -> None:
        self.compute = FakeCompute()
        self.instance_ha = FakeInstanceHA()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class TestPolicy(testtools.TestCase):

    def test_values(self) -> None:
        for value in ('none', 'reboot', 'stop', 'masakari'):
            self.assertEqual(value, policy_of(server({'ha_guest:recovery': value})))

    def test_absent_is_none(self) -> None:
        self.assertEqual('none', policy_of(server({})))
        self.assertEqual('none', policy_of(server({'ha_guest:heartbeat': 'true', 'hw:cpu_policy': 'dedicated'})))

    def test_invalid_value(self) -> None:
        exc = self.assertRaises(PolicyUnknown, policy_of, server({'ha_guest:recovery': 'Reboot'}))
        self.assertIn("Invalid value 'Reboot' for ha_guest:recovery", str(exc))

    def test_extra_specs_not_shown(self) -> None:
        # Policy hides extra specs (key absent), or an old microversion embeds only the flavor id.
        for srv in (server(None), server(embedded=False)):
            exc = self.assertRaises(PolicyUnknown, policy_of, srv)
            self.assertIn('did not show the flavor\'s extra specs', str(exc))

    def test_no_flavor(self) -> None:
        self.assertRaises(PolicyUnknown, policy_of, Server(id='x'))


class TestPolicyLookup(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.now = 100.0
        self.compute = FakeCompute()

    def lookup(self, ttl: float = 60.0, max_cached: int = 100) -> PolicyLookup:
        return PolicyLookup(self.compute.get_server, ttl, max_cached, clock=lambda: self.now)

    def test_cached_until_expiry(self) -> None:
        lookup = self.lookup()
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})
        self.assertEqual(('reboot', False), lookup.get(uid))
        self.now += 59
        self.assertEqual(('reboot', True), lookup.get(uid))
        self.now += 1
        self.assertEqual(('reboot', False), lookup.get(uid))
        self.assertEqual(2, len(self.compute.gets()))

    def test_ttl_zero_never_caches(self) -> None:
        lookup = self.lookup(ttl=0)
        uid = self.compute.add({'ha_guest:recovery': 'stop'})
        lookup.get(uid)
        lookup.get(uid)
        self.assertEqual(2, len(self.compute.gets()))

    def test_errors_are_not_cached(self) -> None:
        lookup = self.lookup()
        uid = self.compute.add({'ha_guest:recovery': 'bad'})
        self.assertRaises(PolicyUnknown, lookup.get, uid)
        self.compute.get_error = ks_exceptions.ConnectTimeout('timed out')
        self.assertRaises(ks_exceptions.ConnectTimeout, lookup.get, uid)
        self.assertIsNone(lookup.cached(uid))

    def test_bounded(self) -> None:
        lookup = self.lookup(max_cached=2)
        uids = [self.compute.add({}) for _ in range(3)]
        for uid in uids:
            lookup.get(uid)
        self.assertIsNone(lookup.cached(uids[0]))
        self.assertEqual('none', lookup.cached(uids[2]))


class SinkTestCase(testtools.TestCase):

    sink_class: type[ActionSink] = RecoverySink

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(ConfFixture()).conf
        self.conf.set_override('fault_sinks', ['log', 'recovery', 'masakari'], group='controller')
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG, name='ha_guest.sinks'))
        self.connection = FakeConnection()
        self.compute = self.connection.compute
        self.active: set[tuple[str, str]] = set()

    def sink(self, cls: Optional[type[ActionSink]] = None, registry: bool = True, **recovery: Any) -> ActionSink:
        for name, value in recovery.items():
            self.conf.set_override(name, value, group='recovery')
        sink = (cls or self.sink_class)(self.conf, None, connection=self.connection,
                                        is_active=self.is_active if registry else None)
        self.addCleanup(sink.close)
        self.assertTrue(sink.pool.wait_idle(WAIT))  # the warm-up
        return sink

    def is_active(self, instance_uuid: str, incident_id: str) -> bool:
        return (instance_uuid, incident_id) in self.active

    def raise_fault(self, sink: ActionSink, fault: dict[str, Any]) -> dict[str, Any]:
        """The fault's recovery intent reaches the sink; returns once it is decided."""
        self.active.add((fault['instance_uuid'], fault['incident_id']))
        outcomes = sink.carry_out_intent([dict(fault)]).wait(WAIT)
        self.assertNotIn('pending', outcomes)
        self.assertTrue(sink.pool.wait_idle(WAIT))
        return fault

    def last_decision(self, sink: ActionSink) -> tuple[str, str]:
        return sink.decisions[-1][2], sink.decisions[-1][3]


class TestRecoverySink(SinkTestCase):

    def test_warm_up(self) -> None:
        self.sink()
        self.assertEqual([('warm-up',)], self.compute.calls)

    def test_reboot_is_hard(self) -> None:
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'reboot', 'ha_guest:heartbeat': 'true'})
        self.raise_fault(sink, make_fault(uid))
        self.assertEqual([('reboot', uid, 'HARD')], self.compute.actions())
        self.assertEqual((ACTED, 'reboot'), self.last_decision(sink))
        self.assertIn('recovery sink: instance %s, incident inc-1: acting: a hard reboot through Nova (policy reboot;'
                      % uid, self.log.output)
        self.assertIn('done: a hard reboot through Nova accepted', self.log.output)

    def test_stop(self) -> None:
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'stop'})
        self.raise_fault(sink, make_fault(uid))
        self.assertEqual([('stop', uid)], self.compute.actions())

    def test_none_or_absent_does_nothing(self) -> None:
        sink = self.sink()
        for specs in ({'ha_guest:recovery': 'none'}, {}):
            self.raise_fault(sink, make_fault(self.compute.add(specs)))
            self.assertEqual((SKIPPED, 'no_policy'), self.last_decision(sink))
        self.assertEqual([], self.compute.actions())
        self.assertIn('nothing to do: the flavor asks for no recovery', self.log.output)

    def test_once_per_incident(self) -> None:
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})
        fault = self.raise_fault(sink, make_fault(uid, 'inc-1'))
        self.raise_fault(sink, dict(fault, detected_at=time.time()))
        self.assertEqual(1, len(self.compute.actions()))
        self.assertEqual((SKIPPED, 'duplicate'), self.last_decision(sink))
        # A new incident of the same instance (seconds later: the guest rebooted first) is a new decision
        # (its policy comes from the cache).
        self.raise_fault(sink, make_fault(uid, 'inc-2', detected_at=time.time() + 2))
        self.assertEqual(2, len(self.compute.actions()))
        self.assertEqual(1, len(self.compute.gets()))
        self.assertIn('policy reboot, cached', self.log.output)

    def test_fault_raised_does_not_act(self) -> None:
        # The recovery intent on the broker brings the fault to one controller's sink, not fault_raised.
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})
        sink.fault_raised(make_fault(uid))
        self.assertTrue(sink.pool.wait_idle(WAIT))
        self.assertEqual([('warm-up',)], self.compute.calls)

    def test_reboot_since_detection_is_already_done(self) -> None:
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})
        fault = make_fault(uid, detected_at=time.time() - 5)
        self.compute.record_action(uid, 'reboot', at=fault['detected_at'] - 30)  # an earlier incident's
        self.compute.record_action(uid, 'stop', at=fault['detected_at'] + 1)  # not ours to count
        self.raise_fault(sink, fault)
        self.assertEqual((ACTED, 'reboot'), self.last_decision(sink))
        # A redelivered intent, on another controller (a sink that never saw the incident).
        other = self.sink()
        self.raise_fault(other, fault)
        self.assertEqual((ALREADY_DONE, 'reboot'), self.last_decision(other))
        self.assertEqual(1, len([a for a in self.compute.actions() if a[0] == 'reboot']))
        self.assertIn('nothing to do: Nova shows a reboot of the instance since the fault was detected',
                      self.log.output)
        self.assertEqual(1, other.counts[ALREADY_DONE])
        # The query asked Nova for the actions since detection (less the clock skew allowance).
        (query,) = [c for c in self.compute.calls if c[0] == 'actions'][-1:]
        self.assertEqual(iso_utc(fault['detected_at'] - 1.0), query[2])

    def test_stop_of_a_stopped_instance_is_already_done(self) -> None:
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'stop'})
        self.compute.servers[uid].status = 'SHUTOFF'
        self.raise_fault(sink, make_fault(uid))
        self.assertEqual((ALREADY_DONE, 'stop'), self.last_decision(sink))
        self.assertEqual([], self.compute.actions())
        self.assertIn('the instance is stopped already (SHUTOFF)', self.log.output)

    def test_check_error_fails(self) -> None:
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})
        self.compute.actions_error = ks_exceptions.ConnectFailure('refused')
        self.raise_fault(sink, make_fault(uid))
        self.assertEqual((FAILED, 'check_error'), self.last_decision(sink))
        self.assertEqual([], self.compute.actions())

    def test_intent_of_many_faults_waits_for_all(self) -> None:
        sink = self.sink(workers=4)
        uids = [self.compute.add({'ha_guest:recovery': 'reboot'}) for _ in range(10)]
        faults = [make_fault(uid) for uid in uids]
        self.active.update((f['instance_uuid'], f['incident_id']) for f in faults)
        outcomes = sink.carry_out_intent(faults, time.monotonic()).wait(WAIT)
        self.assertEqual([ACTED] * 10, outcomes)
        self.assertEqual(sorted(uids), sorted(a[1] for a in self.compute.actions()))

    def test_parse_time(self) -> None:
        self.assertEqual(parse_time('2023-11-14T22:13:20.250000'), parse_time('2023-11-14T22:13:20.250000Z'))
        self.assertEqual(parse_time('2023-11-14T23:13:20.250000+01:00'), parse_time('2023-11-14T22:13:20.25'))
        self.assertIsNone(parse_time('yesterday'))
        self.assertIsNone(parse_time(None))

    def test_disabled(self) -> None:
        sink = self.sink(enabled=False)
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})
        self.raise_fault(sink, make_fault(uid))
        self.assertEqual([], self.compute.calls)  # no warm-up either
        self.assertIn('skipped because [recovery] enabled is false', self.log.output)

    def test_cleared_during_lookup_is_skipped(self) -> None:
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})
        # The registry drops the incident while Nova is being asked: checked just before acting.
        self.compute.on_get = lambda _: self.active.clear()
        self.raise_fault(sink, make_fault(uid))
        self.assertEqual([], self.compute.actions())
        self.assertEqual((SKIPPED, 'cleared'), self.last_decision(sink))
        self.assertIn('skipped because the fault cleared before a hard reboot through Nova was issued',
                      self.log.output)

    def test_cleared_without_registry(self) -> None:
        sink = self.sink(registry=False)
        uid = self.compute.add({'ha_guest:recovery': 'stop'})
        fault = make_fault(uid)
        self.compute.on_get = lambda _: sink.fault_cleared(fault, {'cleared_at': 1.0, 'cleared_by': 'recovered'})
        self.raise_fault(sink, fault)
        self.assertEqual([], self.compute.actions())
        self.assertEqual((SKIPPED, 'cleared'), self.last_decision(sink))

    def test_deadline(self) -> None:
        now = [1000.0]
        self.conf.set_override('action_deadline_s', 2.0, group='recovery')
        sink = RecoverySink(self.conf, None, connection=self.connection, is_active=self.is_active,
                            clock=lambda: now[0])
        self.addCleanup(sink.close)
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})

        def slow_nova(_: str) -> None:
            now[0] += 2.5

        self.compute.on_get = slow_nova
        self.raise_fault(sink, make_fault(uid))
        self.assertEqual([], self.compute.actions())
        self.assertEqual((FAILED, 'deadline'), self.last_decision(sink))
        self.assertIn('was not issued within [recovery] action_deadline_s (2.5s after the fault arrived)',
                      self.log.output)

    def test_lookup_timeout(self) -> None:
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})
        self.compute.get_error = ks_exceptions.ConnectTimeout('Request to http://nova/v2.1/servers/x timed out')
        self.raise_fault(sink, make_fault(uid))
        self.assertEqual((FAILED, 'lookup_error'), self.last_decision(sink))
        self.assertIn('failed because looking the instance up in Nova failed: no answer in time (connect timeout '
                      '2.0s, read timeout 5.0s): Request to http://nova/v2.1/servers/x timed out', self.log.output)

    def test_not_found(self) -> None:
        sink = self.sink()
        self.raise_fault(sink, make_fault())
        self.assertEqual((SKIPPED, 'not_found'), self.last_decision(sink))
        self.assertIn('skipped because Nova does not know the instance', self.log.output)

    def test_unknown_policy(self) -> None:
        sink = self.sink()
        self.raise_fault(sink, make_fault(self.compute.add({'ha_guest:recovery': 'explode'})))
        self.assertEqual((FAILED, 'policy_unknown'), self.last_decision(sink))
        self.assertEqual([], self.compute.actions())

    def test_action_refused(self) -> None:
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'stop'})
        self.compute.action_error = sdk_exceptions.ConflictException(
            'Cannot stop', details="Cannot 'stop' instance while it is in vm_state stopped", http_status=409)
        self.raise_fault(sink, make_fault(uid))
        self.assertEqual((FAILED, 'action_error'), self.last_decision(sink))
        self.assertIn("failed because a stop through Nova failed: HTTP 409: Cannot 'stop' instance", self.log.output)

    def test_unexpected_error_keeps_the_worker(self) -> None:
        sink = self.sink(workers=1)
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})
        self.compute.action_error = RuntimeError('boom')
        self.raise_fault(sink, make_fault(uid, 'inc-1'))
        self.assertIn('RuntimeError: boom', self.log.output)
        self.compute.action_error = None
        self.raise_fault(sink, make_fault(uid, 'inc-2'))
        self.assertEqual((ACTED, 'reboot'), self.last_decision(sink))

    def test_masakari_policy(self) -> None:
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'masakari'})
        self.raise_fault(sink, make_fault(uid))
        self.assertEqual((SKIPPED, 'other_sink'), self.last_decision(sink))
        self.conf.set_override('fault_sinks', ['recovery'], group='controller')
        self.raise_fault(sink, make_fault(uid, 'inc-2'))
        self.assertEqual((SKIPPED, 'sink_missing'), self.last_decision(sink))
        self.assertIn('not done: the flavor asks for masakari, but the masakari sink is not in [controller] '
                      'fault_sinks', self.log.output)
        self.assertEqual([], self.compute.actions())

    def test_never_blocks_and_queue_bound(self) -> None:
        sink = self.sink(workers=1, queue_size=1)
        release, asking = threading.Event(), threading.Event()

        def hung_nova(_: str) -> None:
            asking.set()
            release.wait(WAIT)

        self.compute.on_get = hung_nova
        uids = [self.compute.add({'ha_guest:recovery': 'reboot'}) for _ in range(3)]
        started = time.monotonic()
        waiters = []
        for uid in uids:
            self.active.add((uid, 'inc-1'))
            waiters.append(sink.carry_out_intent([make_fault(uid)], time.monotonic()))
            asking.wait(WAIT)  # the one worker holds the first fault before the next arrives
        # The first waits on Nova, the second in the queue, the third finds the queue full.
        self.assertLess(time.monotonic() - started, 0.5)
        self.assertEqual((FAILED, 'queue_full'), self.last_decision(sink))
        self.assertIn('failed because 1 faults already wait for an action ([recovery] queue_size)',
                      self.log.output)
        self.assertEqual([FAILED], waiters[2].wait(0))
        release.set()
        self.assertEqual([[ACTED], [ACTED]], [waiter.wait(WAIT) for waiter in waiters[:2]])
        self.assertEqual([('reboot', uids[0], 'HARD'), ('reboot', uids[1], 'HARD')], self.compute.actions())

    def test_close(self) -> None:
        sink = self.sink()
        sink.close()
        self.assertEqual(1, self.connection.closed)


class TestMasakariSink(SinkTestCase):

    sink_class = MasakariSink

    def test_notification(self) -> None:
        sink = self.sink()
        uid = self.compute.add({'ha_guest:recovery': 'masakari'})
        fault = self.raise_fault(sink, make_fault(uid, detected_at=1700000000.25))
        self.assertEqual([{
            'type': 'VM', 'hostname': 'cmp-1', 'generated_time': '2023-11-14T22:13:20.250000',
            'payload': {'event': 'LIFECYCLE', 'instance_uuid': uid, 'vir_domain_event': 'STOPPED_FAILED'},
        }], self.connection.instance_ha.notifications)
        self.assertEqual(vm_notification(fault), self.connection.instance_ha.notifications[0])
        self.assertEqual((ACTED, 'masakari'), self.last_decision(sink))
        self.assertEqual([], self.compute.actions())

    def test_reboot_policy_is_left_to_recovery(self) -> None:
        sink = self.sink()
        self.raise_fault(sink, make_fault(self.compute.add({'ha_guest:recovery': 'reboot'})))
        self.assertEqual((SKIPPED, 'other_sink'), self.last_decision(sink))
        self.assertEqual([], self.connection.instance_ha.notifications)

    def test_none_logged_once(self) -> None:
        # With the recovery sink loaded too, "nothing to do" is its line; this one only says it at DEBUG.
        sink = self.sink()
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO, name='ha_guest.sinks'))
        self.raise_fault(sink, make_fault(self.compute.add({})))
        self.assertEqual('', self.log.output)
        self.conf.set_override('fault_sinks', ['masakari'], group='controller')
        self.raise_fault(sink, make_fault(self.compute.add({})))
        self.assertIn('nothing to do', self.log.output)

    def test_masakari_duplicate_is_already_done(self) -> None:
        # A redelivered intent: Masakari has the notification already and refuses the copy.
        sink = self.sink()
        self.connection.instance_ha.error = sdk_exceptions.ConflictException(
            'Conflict', details="Notification received from host cmp-1 of type 'VM' is duplicate.", http_status=409)
        self.raise_fault(sink, make_fault(self.compute.add({'ha_guest:recovery': 'masakari'})))
        self.assertEqual((ALREADY_DONE, 'masakari'), self.last_decision(sink))
        self.assertIn('nothing to do: Masakari has this notification already (HTTP 409: Notification received',
                      self.log.output)

    def test_masakari_refuses(self) -> None:
        sink = self.sink()
        self.connection.instance_ha.error = sdk_exceptions.ConflictException(
            'Conflict', details='Host cmp-1 is in maintenance.', http_status=409)
        self.raise_fault(sink, make_fault(self.compute.add({'ha_guest:recovery': 'masakari'})))
        self.assertEqual((FAILED, 'action_error'), self.last_decision(sink))
        self.assertIn('a VM notification to Masakari failed: HTTP 409: Host cmp-1 is in maintenance',
                      self.log.output)

    def test_iso_utc(self) -> None:
        self.assertEqual('1970-01-01T00:00:01.500000', iso_utc(1.5))
