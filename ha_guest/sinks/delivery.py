"""Notifications sent until the broker took them: oslo.messaging's Notifier logs a refused send and drops it.

Why: oslo.messaging's rabbit driver publishes with confirms, and RabbitMQ may
refuse a publish (``basic.nack``): a quorum queue whose leader's node hangs,
a queue with ``x-overflow: reject-publish`` that is full. Its Notifier then
logs "Could not send notification" and returns, so a fault announcement is
lost with no way for the sink to know (the ``cluster`` chaos drill lost one
probe in three runs that way while a node was stopped). A ``Delivery`` sends
the same message as the Notifier with driver ``messagingv2`` (format 2.0,
priority info) through the transport, where a refused send raises, and
sends it again, to the topics that refused it only, until the broker took it
or ``deadline_s`` passed. The message keeps its ``message_id`` across tries,
so a consumer can tell a copy (a try whose confirm was lost with its
connection) from a new event.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable

import oslo_messaging
from oslo_log import log as logging
from oslo_utils import timeutils

LOG = logging.getLogger(__name__)

#: Seconds between tries; the last one repeats.
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class NotDelivered(Exception):
    """The broker did not take a notification within the deadline."""


class Delivery:
    """Sends info notifications (format 2.0) to every topic, each until the broker took it."""

    def __init__(self, transport: Any, publisher_id: str, topics: list[str], deadline_s: float,
                 retry: int = -1, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``retry``: the transport's own reconnection attempts per try (-1: until it reconnects)."""
        self.transport = transport
        self.publisher_id = publisher_id
        self.topics = list(topics)
        self.deadline_s = deadline_s
        self.retry = retry
        self._sleep = sleep
        self._clock = clock

    def info(self, event_type: str, payload: dict[str, Any]) -> None:
        """Send one notification; raise NotDelivered if a topic still refused it at the deadline."""
        message = {'message_id': str(uuid.uuid4()), 'publisher_id': self.publisher_id, 'event_type': event_type,
                   'priority': 'INFO', 'payload': payload, 'timestamp': str(timeutils.utcnow())}
        deadline = self._clock() + self.deadline_s
        pending, attempt = self.topics, 0
        while True:
            attempt += 1
            refused: list[tuple[str, Exception]] = []
            for topic in pending:
                try:
                    # What oslo.messaging's own messagingv2 driver calls, without its catch-all.
                    self.transport._send_notification(oslo_messaging.Target(topic='%s.info' % topic), {}, message,
                                                      version=2.0, retry=self.retry)
                except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the broker did not take it
                    refused.append((topic, exc))
            if not refused:
                if attempt > 1:
                    LOG.info('notification %s (%s) sent on try %d', message['message_id'], event_type, attempt)
                return
            delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S)) - 1]
            topics = ', '.join(topic for topic, _ in refused)
            if self._clock() + delay > deadline:
                raise NotDelivered('notification %s (%s) to %s not taken by the broker in %.0f s (%d tries): %s'
                                   % (message['message_id'], event_type, topics, self.deadline_s, attempt,
                                      refused[-1][1]))
            LOG.warning('notification %s (%s) to %s refused (%s); trying again in %.1f s', message['message_id'],
                        event_type, topics, refused[-1][1], delay)
            self._sleep(delay)
            pending = [topic for topic, _ in refused]
