"""The "notifications" fault sink: oslo.messaging info notifications of ha_guest's own event types."""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from ha_guest.conf import default as default_conf
from ha_guest.conf import sinks as sinks_conf
from ha_guest.rpc.transport import get_notification_transport
from ha_guest.sinks.base import EVENT_FAULT_CLEARED, EVENT_FAULT_RAISED, FaultSink, event_payload, publisher_id
from ha_guest.sinks.delivery import Delivery


class NotificationSink(FaultSink):
    """Sends ha_guest.heartbeat.fault.raised / .cleared (messagingv2, info) on [sink_notifications] topics.

    And the watchers' events: ha_guest.host.fault.raised / .cleared (a silent
    compute agent) and ha_guest.instance.unregistered.raised / .cleared.
    """

    #: Option group holding this sink's topics and optional transport_url.
    GROUP = sinks_conf.NOTIFICATIONS_GROUP
    #: Sends are thread-safe (each takes a pooled connection of the transport).
    concurrent = True

    def __init__(self, conf: cfg.ConfigOpts, transport: Any) -> None:
        default_conf.register_opts(conf)
        sinks_conf.register_opts(conf)
        opts = conf[self.GROUP]
        # A sink may send to a broker of its own (e.g. Vitrage's); it owns that transport.
        self._own_transport = None
        if opts.transport_url:
            transport = self._own_transport = get_notification_transport(conf, opts.transport_url)
        super().__init__(conf, transport)
        self.topics = list(opts.topics)
        # What oslo.messaging's Notifier (driver messagingv2) sends, but a send the broker refused is tried
        # again (ha_guest.sinks.delivery) instead of logged and dropped.
        self._delivery = Delivery(transport, publisher_id(conf), self.topics, opts.send_deadline_s,
                                  _transport_retry(conf))

    def fault_raised(self, fault: dict[str, Any]) -> None:
        self._delivery.info(EVENT_FAULT_RAISED, event_payload(fault))

    def fault_cleared(self, fault: dict[str, Any], cleared: dict[str, Any]) -> None:
        self._delivery.info(EVENT_FAULT_CLEARED, event_payload(fault, cleared))

    def watch_event(self, event_type: str, payload: dict[str, Any]) -> None:
        """Send a watcher's alarm (host fault, unregistered instance) under its own event type."""
        self._delivery.info(event_type, dict(payload))

    def close(self) -> None:
        if self._own_transport is not None:
            self._own_transport.cleanup()
            self._own_transport = None


def _transport_retry(conf: cfg.ConfigOpts) -> int:
    """[oslo_messaging_notifications] retry, as the Notifier would use it (-1, forever, where not registered)."""
    try:
        return int(conf.oslo_messaging_notifications.retry)
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        return -1
