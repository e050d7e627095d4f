"""A notification the broker did not take is sent again by our sinks, where oslo.messaging's Notifier drops it.

Real broker, real refusal: a RabbitMQ node of the test's own is stopped, so
the transport's first connection is refused. oslo.messaging hands kombu
``max_retries=-1`` for that connection, which kombu reads as "no retry":
the send raises, and the Notifier logs "Could not send notification" and
returns. The chaos drill ``cluster`` lost a probe's ``fault.raised`` that
way while a node was down. The sink's Delivery tries again until the broker
is back, and a listener gets the event once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import fixtures
import oslo_messaging

from ha_guest.rpc import transport as rpc_transport
from ha_guest.sinks.base import EVENT_FAULT_RAISED
from ha_guest.sinks.delivery import NotDelivered
from ha_guest.sinks.notifications import NotificationSink
from ha_guest.testing import messaging, wait_for
from tests.functional.base import FunctionalTestCase
from tests.functional.controller.test_controller import make_fault
from tests.functional.private_rabbit import PrivateRabbit
from tests.functional.rabbit import TIMEOUT
from tests.messaging import NotificationListenerFixture


class TestNotificationDelivery(FunctionalTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.broker = self.useFixture(PrivateRabbit())
        self.topic = 'delivery_%s' % uuid.uuid4().hex[:8]

    def sink(self, deadline_s: float) -> tuple[NotificationSink, oslo_messaging.Transport]:
        conf = messaging.make_conf(self.broker.url, 'delivery-test', {
            'sink_notifications': {'topics': [self.topic], 'send_deadline_s': deadline_s}})
        transport = rpc_transport.get_notification_transport(conf)
        self.addCleanup(transport.cleanup)
        sink = NotificationSink(conf, transport)
        self.addCleanup(sink.close)
        return sink, transport

    def test_sent_again_until_the_broker_is_back(self) -> None:
        sink, transport = self.sink(60.0)
        self.broker.stop_app()
        # The control: oslo.messaging's Notifier logs the failure and returns; that event is gone.
        notifier = oslo_messaging.Notifier(transport, publisher_id='control', driver='messagingv2',
                                           topics=[self.topic])
        notifier.info({}, 'control.dropped', {'n': 1})
        self.assertIn('Could not send notification to %s' % self.topic, self.log.output)

        fault = make_fault()
        done = threading.Event()
        errors: list[BaseException] = []

        def send() -> None:
            try:
                sink.fault_raised(fault)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                done.set()

        threading.Thread(target=send, daemon=True).start()
        wait_for(lambda: self.log.output.count('; trying again in') >= 2, TIMEOUT,
                 message='the sink to be refused and to try again')
        self.assertFalse(done.is_set(), 'the sink gave up at once')
        started = time.monotonic()
        self.broker.start_app()
        self.assertTrue(done.wait(TIMEOUT), 'the sink did not send once the broker was back')
        self.assertEqual([], errors)
        print('\nbroker back -> notification sent: %.2f s' % (time.monotonic() - started))

        # In the topic's queue: the sink's event, once; nothing of the Notifier's.
        collector = self.useFixture(NotificationListenerFixture(transport, [self.topic])).collector
        got = collector.get(TIMEOUT)
        self.assertEqual((EVENT_FAULT_RAISED, fault['incident_id']),
                         (got['event_type'], got['payload']['incident_id']))
        self.assertRaises(AssertionError, collector.get, 1.5)
        self.assertIn('sent on try', self.log.output)

    def test_not_taken_by_the_deadline_is_that_sinks_error(self) -> None:
        sink, _ = self.sink(1.0)
        self.broker.stop_app()
        error = self.assertRaises(NotDelivered, sink.fault_raised, make_fault())
        self.assertIn('not taken by the broker in 1 s', str(error))
