"""Test fixtures for oslo.messaging: a private ConfigOpts with every ha_guest option, unique topics.

Imported by tests/unit and tests/functional, whose package __init__ refuses eventlet first.
"""

from __future__ import annotations

import uuid
from typing import Any

import fixtures
import oslo_messaging
from oslo_config import cfg
from oslo_messaging import conffixture

from ha_guest import conf as ha_conf
from ha_guest.rpc import transport as rpc_transport


def unique(name: str) -> str:
    """Return ``name`` with a random suffix: a topic no other test uses."""
    return '%s_%s' % (name, uuid.uuid4().hex[:12])


class ConfFixture(fixtures.Fixture):
    """A private ConfigOpts with ha_guest's and oslo.messaging's options, unique topics and a transport URL."""

    def __init__(self, transport_url: str = 'fake:/', host: str = 'test-host', **overrides: dict[str, Any]) -> None:
        super().__init__()
        self.transport_url = transport_url
        self.host = host
        self.overrides = overrides

    def _setUp(self) -> None:
        self.conf = cfg.ConfigOpts()
        ha_conf.register_all(self.conf)
        # oslo.messaging's own groups (tracing, metrics, rabbit...) exist only on cfg.CONF otherwise.
        messaging = self.useFixture(conffixture.ConfFixture(self.conf))
        rpc_transport.set_defaults(self.conf)  # the services' exchange, as their command lines set it
        messaging.transport_url = self.transport_url
        self.conf([], project='ha_guest_tests', default_config_files=[], default_config_dirs=[])
        self.conf.set_override('host', self.host)
        for name in ('controller_topic', 'controller_sync_topic', 'compute_topic'):
            self.conf.set_override(name, unique(name), group='rpc')
        for group in ('sink_notifications', 'sink_vitrage'):
            self.conf.set_override('topics', [unique(group)], group=group)
        self.conf.set_override('intent_topic', unique('recovery_intents'), group='recovery')
        # Not set_override(): oslo.messaging's fixture rewrites 'notification_topics' to a group of its own.
        set_override = getattr(self.conf.set_override, 'wrapped', self.conf.set_override)
        for name, value in (('notification_topics', [unique('versioned_notifications')]),
                            ('notification_exchange', unique('nova')), ('notification_pool', unique('ha_guest-sgm'))):
            set_override(name, value, group='sgm')
        self.conf.set_override('announce_journal', '', group='controller')  # a test that wants one names it
        for group, values in self.overrides.items():
            for name, value in values.items():
                self.conf.set_override(name, value, group=None if group == 'DEFAULT' else group)
        self.addCleanup(self.conf.reset)


class NotificationCollector:
    """Notification listener endpoint that keeps every info notification it gets."""

    def __init__(self) -> None:
        import queue

        self.received: queue.Queue[dict[str, Any]] = queue.Queue()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any) -> None:
        self.received.put({'publisher_id': publisher_id, 'event_type': event_type, 'payload': payload})

    def get(self, timeout: float) -> dict[str, Any]:
        """Return the next notification; AssertionError if none arrives within ``timeout``."""
        import queue

        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError('no notification within %.1fs' % timeout) from None


class NotificationListenerFixture(fixtures.Fixture):
    """A running notification listener on ``topics``; its collector holds what arrived."""

    def __init__(self, transport: oslo_messaging.Transport, topics: list[str]) -> None:
        super().__init__()
        self.transport = transport
        self.topics = topics

    def _setUp(self) -> None:
        self.collector = NotificationCollector()
        targets = [oslo_messaging.Target(topic=topic) for topic in self.topics]
        self.listener = oslo_messaging.get_notification_listener(self.transport, targets, [self.collector])
        self.listener.start()
        self.addCleanup(self._stop)

    def _stop(self) -> None:
        self.listener.stop()
        self.listener.wait()
