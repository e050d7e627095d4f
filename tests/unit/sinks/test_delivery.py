"""Delivery: a refused notification is sent again, to the topics that refused it, until the deadline."""

from __future__ import annotations

import logging
from typing import Any

import fixtures
import testtools

from ha_guest.sinks.delivery import RETRY_DELAYS_S, Delivery, NotDelivered


class RefusingTransport:
    """Stands in for the transport: refuses the first ``refusals[topic]`` sends of each topic."""

    def __init__(self, **refusals: int) -> None:
        self.refusals = dict(refusals)
        self.sent: list[tuple[str, dict[str, Any], float, int]] = []
        self.tries: list[str] = []

    def _send_notification(self, target: Any, ctxt: dict[str, Any], message: dict[str, Any], version: float,
                           retry: int) -> None:
        self.tries.append(target.topic)
        topic = target.topic[:-len('.info')]
        if self.refusals.get(topic, 0) > 0:
            self.refusals[topic] -= 1
            raise RuntimeError('basic.nack')
        self.sent.append((target.topic, message, version, retry))


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class TestDelivery(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.time = FakeTime()

    def delivery(self, transport: RefusingTransport, deadline_s: float = 60.0) -> Delivery:
        return Delivery(transport, 'ha_guest.controller.ctl-1', ['a', 'b'], deadline_s, retry=3,
                        sleep=self.time.sleep, clock=self.time.clock)

    def test_sent_once_to_every_topic_in_the_notifier_format(self) -> None:
        transport = RefusingTransport()
        self.delivery(transport).info('ha_guest.heartbeat.fault.raised', {'incident_id': 'x'})
        self.assertEqual(['a.info', 'b.info'], [topic for topic, *_ in transport.sent])
        _, message, version, retry = transport.sent[0]
        self.assertEqual(2.0, version)
        self.assertEqual(3, retry)
        self.assertEqual({'message_id', 'publisher_id', 'event_type', 'priority', 'payload', 'timestamp'},
                         set(message))
        self.assertEqual(('ha_guest.controller.ctl-1', 'ha_guest.heartbeat.fault.raised', 'INFO',
                          {'incident_id': 'x'}),
                         (message['publisher_id'], message['event_type'], message['priority'], message['payload']))
        self.assertEqual([], self.time.slept)

    def test_a_refused_topic_is_tried_again_alone_with_the_same_message(self) -> None:
        transport = RefusingTransport(b=3)
        self.delivery(transport).info('e', {})
        self.assertEqual(['a.info', 'b.info', 'b.info', 'b.info', 'b.info'], transport.tries)
        self.assertEqual(['a.info', 'b.info'], [topic for topic, *_ in transport.sent])
        self.assertEqual(transport.sent[0][1]['message_id'], transport.sent[1][1]['message_id'])
        self.assertEqual(list(RETRY_DELAYS_S[:3]), self.time.slept)
        self.assertIn('refused (basic.nack); trying again in 0.2 s', self.log.output)
        self.assertIn('sent on try 4', self.log.output)

    def test_refused_past_the_deadline_raises(self) -> None:
        transport = RefusingTransport(a=1000)
        error = self.assertRaises(NotDelivered, self.delivery(transport, deadline_s=20.0).info, 'e', {})
        self.assertIn('to a not taken by the broker in 20 s', str(error))
        self.assertLessEqual(self.time.now, 20.0)
        self.assertEqual(['b.info'], [topic for topic, *_ in transport.sent])  # b went through at once
        self.assertEqual(RETRY_DELAYS_S[-1], self.time.slept[-1])  # the backoff stops growing

    def test_deadline_zero_is_one_try(self) -> None:
        transport = RefusingTransport(a=1)
        self.assertRaises(NotDelivered, self.delivery(transport, deadline_s=0.0).info, 'e', {})
        self.assertEqual(['a.info', 'b.info'], transport.tries)
