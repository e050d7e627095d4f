"""Recovery intents: the carrier's decisions (known, ended, unknown incidents) and the publisher/listener pair."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import fixtures
import testtools

from ha_guest.controller.recovery_intents import (
    EVENT_INTENT,
    IntentCarrier,
    IntentPublisher,
    intent_transport_url,
    start_listener,
)
from ha_guest.controller.registry import ENDED, FaultRegistry
from ha_guest.rpc import transport as rpc_transport
from ha_guest.sinks.recovery import ACTED, SKIPPED, RecoverySink
from tests.messaging import ConfFixture
from tests.unit.controller.test_registry import fault, item, report
from tests.unit.sinks.test_recovery import WAIT, FakeConnection


class CarrierTestCase(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(ConfFixture()).conf
        self.conf.set_override('fault_sinks', ['log', 'recovery'], group='controller')
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO, name='ha_guest'))
        self.registry = FaultRegistry()
        self.connection = FakeConnection()
        self.compute = self.connection.compute
        self.sink = RecoverySink(self.conf, None, connection=self.connection, is_active=self.not_ended)
        self.addCleanup(self.sink.close)
        self.asked: list[str] = []
        self.on_ask: Any = None
        self.carrier = IntentCarrier(self.registry, [self.sink], self.ask, wait_s=0.5)

    def not_ended(self, instance_uuid: str, incident_id: str) -> bool:
        return self.registry.state_of((instance_uuid, incident_id)) != ENDED

    def ask(self, host: str) -> None:
        self.asked.append(host)
        if self.on_ask is not None:
            self.on_ask(host)

    def reboot_fault(self, **kwargs: Any) -> dict[str, Any]:
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})
        return fault(instance=uid, at=time.time() - 1, **kwargs)

    def intent(self, *faults: dict[str, Any], age: float = 0.0) -> dict[str, Any]:
        return {'faults': list(faults), 'origin': 'ctl-x', 'published_at': time.time() - age}


class TestCarrier(CarrierTestCase):

    def test_known_incident_is_acted_on_at_once(self) -> None:
        one = self.reboot_fault()
        self.registry.add(one)
        self.assertEqual({'recovery': [ACTED]}, self.carrier.carry_out(self.intent(one)))
        self.assertEqual([], self.asked)
        self.assertIn('recovery intent from ctl-x', self.log.output)

    def test_ended_incident_gets_no_action(self) -> None:
        one = self.reboot_fault()
        self.registry.clear(one['instance_uuid'], one['incident_id'], time.time(), 'recovered')
        self.assertEqual({'recovery': []}, self.carrier.carry_out(self.intent(one)))
        self.assertEqual([], self.compute.actions())
        self.assertEqual((one['instance_uuid'], one['incident_id'], SKIPPED, 'cleared'), self.sink.decisions[-1])

    def test_unknown_incident_asks_its_host_and_learns_it_ended(self) -> None:
        one = self.reboot_fault()
        # The host's state report (taken now) no longer shows the incident: it ended while nobody listened.
        self.on_ask = lambda host: threading.Timer(
            0.05, self.registry.reconcile, (report(host, time.time(), item(one['instance_uuid']), agent=True),)
        ).start()
        started = time.monotonic()
        self.carrier.carry_out(self.intent(one))
        self.assertLess(time.monotonic() - started, 0.5)  # decided when the report came, not at the bound
        self.assertEqual(['cmp-1'], self.asked)
        self.assertEqual([], self.compute.actions())
        self.assertEqual(SKIPPED, self.sink.decisions[-1][2])

    def test_unknown_incident_announced_by_its_host_is_acted_on(self) -> None:
        one = self.reboot_fault()
        self.on_ask = lambda host: threading.Timer(0.05, self.registry.reconcile, (report(
            host, time.time(), item(one['instance_uuid'], one['incident_id'], detected_at=one['detected_at'],
                                    announced=True), agent=True),)).start()
        self.assertEqual({'recovery': [ACTED]}, self.carrier.carry_out(self.intent(one)))

    def test_still_unknown_after_the_wait_is_acted_on(self) -> None:
        one = self.reboot_fault()
        started = time.monotonic()
        self.assertEqual({'recovery': [ACTED]}, self.carrier.carry_out(self.intent(one)))
        self.assertGreaterEqual(time.monotonic() - started, 0.5)
        self.assertIn('still unknown after 0.5s', self.log.output)

    def test_peer_sync_within_the_grace_asks_nobody(self) -> None:
        one = self.reboot_fault()
        threading.Timer(0.05, self.registry.merge, ([one],)).start()
        self.assertEqual({'recovery': [ACTED]}, self.carrier.carry_out(self.intent(one)))
        self.assertEqual([], self.asked)

    def test_host_asked_once_per_wait(self) -> None:
        # Two intents at once (a storm on one host): one state report request for both.
        faults = [self.reboot_fault(incident='a'), self.reboot_fault(incident='b')]
        other = threading.Thread(target=self.carrier.carry_out, args=(self.intent(self.reboot_fault(incident='c')),))
        other.start()
        self.carrier.carry_out(self.intent(*faults))
        other.join(WAIT)
        self.assertEqual(['cmp-1'], self.asked)

    def test_deadline_counts_from_publication(self) -> None:
        self.conf.set_override('action_deadline_s', 2.0, group='recovery')
        one = self.reboot_fault()
        self.registry.add(one)
        self.carrier.carry_out(self.intent(one, age=3.0))
        self.assertEqual('deadline', self.sink.decisions[-1][3])
        self.assertEqual([], self.compute.actions())

    def test_disabled_sinks_decide_at_once(self) -> None:
        self.conf.set_override('enabled', False, group='recovery')
        started = time.monotonic()
        self.assertEqual({'recovery': [SKIPPED]}, self.carrier.carry_out(self.intent(self.reboot_fault())))
        self.assertLess(time.monotonic() - started, 0.3)  # no wait for the unknown incident
        self.assertEqual([], self.asked)

    def test_bad_payloads_are_dropped(self) -> None:
        self.assertEqual({}, self.carrier.carry_out({'faults': 'nope'}))
        self.assertEqual({}, self.carrier.carry_out({'faults': [{'instance_uuid': 'x'}]}))
        self.assertIn('recovery intent: a fault dropped', self.log.output)


class TestPublishAndListen(CarrierTestCase):

    def test_round_trip_on_the_fake_driver(self) -> None:
        transport = rpc_transport.get_notification_transport(self.conf)
        self.addCleanup(transport.cleanup)
        done = threading.Event()
        carry_out = self.carrier.carry_out

        def carried(payload: dict[str, Any]) -> dict[str, list[str]]:
            try:
                return carry_out(payload)
            finally:
                done.set()

        self.carrier.carry_out = carried  # type: ignore[method-assign]
        listener = start_listener(self.conf, transport, self.carrier, workers=2)
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        one = self.reboot_fault()
        self.registry.add(one)
        IntentPublisher(self.conf, transport, 'ctl-x').publish([one])
        self.assertTrue(done.wait(WAIT))
        self.assertEqual([('reboot', one['instance_uuid'], 'HARD')], self.compute.actions())
        self.assertEqual('ha_guest.recovery.intent', EVENT_INTENT)

    def test_publish_failure_raises(self) -> None:
        class Broken:
            def _send_notification(self, *args: Any, **kwargs: Any) -> None:
                raise ConnectionError('no broker')

        publisher = IntentPublisher(self.conf, Broken(), 'ctl-x')  # type: ignore[arg-type]
        self.assertRaises(ConnectionError, publisher.publish, [fault()])


class TestIntentTransport(testtools.TestCase):

    def test_rabbit_queue_never_auto_deleted(self) -> None:
        conf = self.useFixture(ConfFixture(transport_url='rabbit://u:p@broker:5672/vh?heartbeat_rate=2')).conf
        url = intent_transport_url(conf)
        self.assertEqual('rabbit://u:p@broker:5672/vh?heartbeat_rate=2&amqp_auto_delete=false', url)

    def test_other_drivers_unchanged(self) -> None:
        conf = self.useFixture(ConfFixture()).conf
        self.assertEqual('fake:/', intent_transport_url(conf))
