"""The fault sinks: payload shape, event types, topics, publisher id, log lines, entry points."""

from __future__ import annotations

import logging

import fixtures
import testtools

from ha_guest.controller.manager import SinkLoadError, load_sinks
from ha_guest.rpc import transport as rpc_transport
from ha_guest.rpc.payloads import FAULT_KEYS
from ha_guest.sinks import base
from ha_guest.sinks.log import LogSink
from ha_guest.sinks.notifications import NotificationSink
from ha_guest.sinks.vitrage import VitrageSink
from tests.messaging import ConfFixture, NotificationListenerFixture
from tests.unit.controller.test_registry import fault

TIMEOUT = 5.0
CLEARED = {'cleared_at': 150.0, 'cleared_by': 'recovered'}


class TestPayload(testtools.TestCase):

    def test_event_types(self) -> None:
        self.assertEqual('ha_guest.heartbeat.fault.raised', base.EVENT_FAULT_RAISED)
        self.assertEqual('ha_guest.heartbeat.fault.cleared', base.EVENT_FAULT_CLEARED)

    def test_raised(self) -> None:
        payload = base.event_payload(fault())
        self.assertEqual(dict(fault(), state='active', cleared_at=None, cleared_by=None), payload)
        self.assertEqual(list(FAULT_KEYS) + ['state', 'cleared_at', 'cleared_by'], list(payload))

    def test_cleared(self) -> None:
        payload = base.event_payload(dict(fault(), extra='not sent'), CLEARED)
        self.assertEqual(dict(fault(), state='cleared', cleared_at=150.0, cleared_by='recovered'), payload)

    def test_publisher_id(self) -> None:
        conf = self.useFixture(ConfFixture(host='ctl-1')).conf
        self.assertEqual('ha_guest.controller.ctl-1', base.publisher_id(conf))


class TestLogSink(testtools.TestCase):

    def test_one_line_each(self) -> None:
        log = self.useFixture(fixtures.FakeLogger(level=logging.INFO, name='ha_guest.sinks.log'))
        sink = LogSink(None, None)
        sink.fault_raised(fault())
        sink.fault_cleared(fault(), CLEARED)
        sink.close()
        lines = log.output.splitlines()
        self.assertEqual(2, len(lines))
        self.assertEqual('Heartbeat fault raised: instance i-1 on host cmp-1, missed: r (incident inc-1, '
                         'interval 100 ms, misses 1)', lines[0])
        self.assertEqual('Heartbeat fault cleared (recovered): instance i-1 on host cmp-1, missed (incident '
                         'inc-1)', lines[1])


class NotificationTestCase(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(ConfFixture(host='ctl-1')).conf
        self.transport = rpc_transport.get_notification_transport(self.conf)
        self.addCleanup(self.transport.cleanup)

    def check_sink(self, sink_cls: type[NotificationSink], group: str) -> None:
        topics = self.conf[group].topics
        listener = self.useFixture(NotificationListenerFixture(self.transport, topics)).collector
        sink = sink_cls(self.conf, self.transport)
        self.addCleanup(sink.close)
        sink.fault_raised(fault())
        sink.fault_cleared(fault(), CLEARED)
        raised, cleared = listener.get(TIMEOUT), listener.get(TIMEOUT)
        self.assertEqual({'publisher_id': 'ha_guest.controller.ctl-1', 'event_type': base.EVENT_FAULT_RAISED,
                          'payload': base.event_payload(fault())}, raised)
        self.assertEqual({'publisher_id': 'ha_guest.controller.ctl-1', 'event_type': base.EVENT_FAULT_CLEARED,
                          'payload': base.event_payload(fault(), CLEARED)}, cleared)


class TestNotificationSinks(NotificationTestCase):

    def test_notifications(self) -> None:
        self.check_sink(NotificationSink, 'sink_notifications')

    def test_vitrage(self) -> None:
        self.check_sink(VitrageSink, 'sink_vitrage')

    def test_topics(self) -> None:
        self.conf.set_override('topics', ['t1', 't2'], group='sink_vitrage')
        self.assertEqual(['t1', 't2'], VitrageSink(self.conf, self.transport).topics)
        self.assertEqual(self.conf.sink_notifications.topics, NotificationSink(self.conf, self.transport).topics)

    def test_own_transport(self) -> None:
        self.conf.set_override('transport_url', 'fake:/', group='sink_vitrage')
        sink = VitrageSink(self.conf, self.transport)
        self.assertIsNot(self.transport, sink.transport)
        cleanup = self.useFixture(fixtures.MockPatchObject(sink.transport, 'cleanup'))
        sink.close()
        sink.close()
        cleanup.mock.assert_called_once_with()
        NotificationSink(self.conf, self.transport).close()  # the shared transport is not its to close


class TestEntryPoints(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(ConfFixture()).conf
        self.transport = rpc_transport.get_notification_transport(self.conf)
        self.addCleanup(self.transport.cleanup)

    def test_load_every_sink(self) -> None:
        sinks = load_sinks(self.conf, self.transport)
        self.assertEqual(['log', 'notifications', 'vitrage'], list(sinks))
        self.assertIsInstance(sinks['log'], LogSink)
        self.assertIsInstance(sinks['notifications'], NotificationSink)
        self.assertIsInstance(sinks['vitrage'], VitrageSink)

    def test_order_and_duplicates(self) -> None:
        self.conf.set_override('fault_sinks', ['vitrage', 'log', 'vitrage'], group='controller')
        self.assertEqual(['vitrage', 'log'], list(load_sinks(self.conf, self.transport)))

    def test_none(self) -> None:
        self.conf.set_override('fault_sinks', [], group='controller')
        self.assertEqual({}, load_sinks(self.conf, self.transport))

    def test_unknown_sink_fails(self) -> None:
        self.conf.set_override('fault_sinks', ['log', 'no_such_sink'], group='controller')
        exc = self.assertRaises(SinkLoadError, load_sinks, self.conf, self.transport)
        self.assertIn('no_such_sink', str(exc))
        self.assertIn('ha_guest.fault_sinks', str(exc))
