"""Recovery intents on the broker: published when a controller accepts new faults, carried out by one controller.

Where the intent lives decides what a crash does to it. In the controller's
memory it dies with the process (the fault was accepted, the recovery never
runs); here it is a message on the queue ``<[recovery] intent_topic>.info``
that every controller with an action sink consumes. The broker hands each
intent to one of them and takes it back if that controller dies before it
acknowledged it; oslo.messaging acknowledges once the endpoint returned, and
the endpoint returns once every action of the intent was decided. A
redelivered intent may find its action done already: the action sinks ask
Nova (or Masakari) before they act, so a crash at any moment neither loses
nor doubles the action.

The intents keep to an exchange of their own (named as the topic), and the
intent transport declares it and the queue without auto-delete whatever
[oslo_messaging_rabbit] amqp_auto_delete says: intents must outlive every
controller that could consume them (all of them may be down at once).
"""

from __future__ import annotations

import datetime
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Optional

import oslo_messaging
from oslo_config import cfg
from oslo_log import log as logging

from ha_guest.controller.registry import ENDED, UNKNOWN, FaultRegistry, key_of
from ha_guest.rpc import payloads
from ha_guest.rpc.errors import InvalidPayload
from ha_guest.sinks.recovery import SKIPPED, ActionSink

LOG = logging.getLogger(__name__)

#: Event type of an intent (a notification on our own topic, never on one other services consume).
EVENT_INTENT = 'ha_guest.recovery.intent'
#: Reconnection attempts of one publish before report_fault fails (the agent retries the report).
PUBLISH_RETRY = 2
#: Seconds an intent for an unknown incident waits for the peer sync before the host is asked for a state report.
PEER_SYNC_GRACE_S = 0.3
#: Incident ids named in the log line of a received intent.
LOGGED_INCIDENTS = 3


def intent_target(conf: cfg.ConfigOpts, suffix: str = '') -> oslo_messaging.Target:
    """Return the target the intent listener consumes (queue ``<intent_topic>.info``), on its own exchange."""
    topic = conf.recovery.intent_topic
    return oslo_messaging.Target(exchange=topic, topic=topic + suffix)


def intent_transport_url(conf: cfg.ConfigOpts) -> Optional[str]:
    """Return the notification transport URL with the intents' queue options (RabbitMQ: never auto-deleted)."""
    url = conf.oslo_messaging_notifications.transport_url or conf.transport_url
    parsed = oslo_messaging.TransportURL.parse(conf, url)
    if parsed.transport not in ('rabbit', 'kombu'):
        return url
    query = dict(parsed.query, amqp_auto_delete='false')
    return str(oslo_messaging.TransportURL(conf, parsed.transport, parsed.virtual_host, parsed.hosts, query))


def get_intent_transport(conf: cfg.ConfigOpts) -> oslo_messaging.Transport:
    """Return the notification transport the intents are published and consumed on."""
    return oslo_messaging.get_notification_transport(conf, url=intent_transport_url(conf))


class IntentPublisher:
    """Publishes one intent message per accepted fault report (or batch); raises when it could not be sent."""

    def __init__(self, conf: cfg.ConfigOpts, transport: oslo_messaging.Transport, origin: str) -> None:
        self.origin = origin
        self.publisher_id = 'ha_guest.controller.%s' % conf.host
        self._transport = transport
        self._target = intent_target(conf, '.info')

    def publish(self, faults: list[dict[str, Any]]) -> None:
        """Put one intent for ``faults`` on the broker."""
        message = {
            'message_id': str(uuid.uuid4()), 'publisher_id': self.publisher_id, 'event_type': EVENT_INTENT,
            'priority': 'INFO', 'timestamp': str(datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)),
            'payload': {'faults': faults, 'origin': self.origin, 'published_at': time.time()},
        }
        # oslo's Notifier logs a failed send and returns; an intent that is not on the broker must fail
        # the report instead (the agent retries it), hence the transport's own send, in messagingv2 format.
        self._transport._send_notification(self._target, {}, message, version=2.0, retry=PUBLISH_RETRY)


class IntentCarrier:
    """Decides the faults of one intent: waits until the registry knows them, then lets every action sink act.

    Returns only when every sink decided every fault: the broker keeps the
    intent until then. ``ask_host(host)`` asks a compute agent for a state
    report (at most once per host per wait).
    """

    def __init__(self, registry: FaultRegistry, sinks: Sequence[ActionSink], ask_host: Callable[[str], None],
                 wait_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.sinks = list(sinks)
        self.wait_s = wait_s
        self._ask_host = ask_host
        self._clock = clock
        self._asked: dict[str, float] = {}
        self._asked_lock = threading.Lock()
        self.intents = 0

    def carry_out(self, payload: dict[str, Any]) -> dict[str, list[str]]:
        """Carry an intent's faults out; return each sink's outcomes, in the faults' order."""
        faults = self._faults(payload)
        if not faults:
            return {}
        self.intents += 1
        published_at = payload.get('published_at')
        age = max(0.0, time.time() - float(published_at)) if isinstance(published_at, (int, float)) else 0.0
        # The deadline of the actions counts from when the fault was accepted, wherever that was.
        received = self._clock() - age
        shown = ', '.join('%s/%s' % key_of(f) for f in faults[:LOGGED_INCIDENTS])
        # log: several instances (an intent may carry a batch; one fault's line carries its instance)
        LOG.info('recovery intent from %s (%.0f ms old): %d fault(s): %s%s', payload.get('origin'), age * 1e3,
                 len(faults), shown, ', ...' if len(faults) > LOGGED_INCIDENTS else '',
                 instance_uuid=faults[0]['instance_uuid'] if len(faults) == 1 else None)
        if any(sink.opts.enabled for sink in self.sinks):
            self._await_known(faults)  # (disabled sinks only log a skip: nothing to wait for)
        ended = [f for f in faults if self.registry.state_of(key_of(f), f['host'], f['detected_at']) == ENDED]
        live = [f for f in faults if f not in ended]
        pending = []
        for sink in self.sinks:
            for fault in ended:
                # Known ended, perhaps from its host's state report only: nothing to recover.
                sink.record(fault, SKIPPED, 'cleared', 'skipped because the incident ended before the action')
            pending.append((sink, sink.carry_out_intent(live, received)))
        return {sink.name: waiter.wait() for sink, waiter in pending}

    def _faults(self, payload: Any) -> list[dict[str, Any]]:
        items = payload.get('faults') if isinstance(payload, dict) else None
        if not isinstance(items, list):
            LOG.error('recovery intent without a list of faults, dropped: %r', payload)
            return []
        faults = []
        for item in items:
            try:
                faults.append(payloads.fault(item))
            except InvalidPayload as exc:
                LOG.error('recovery intent: a fault dropped: %s', exc)
        return faults

    def _await_known(self, faults: list[dict[str, Any]]) -> None:
        """Wait (bounded) until the registry knows every fault as active or ended."""
        keys = [(key_of(f), f['host'], float(f['detected_at'])) for f in faults]
        grace = min(PEER_SYNC_GRACE_S, self.wait_s)
        if self.registry.wait_known(keys, grace):
            return
        hosts = {host for key, host, at in keys if self.registry.state_of(key, host, at) == UNKNOWN}
        for host in sorted(hosts):
            self._ask(host)
        if not self.registry.wait_known(keys, self.wait_s - grace):
            unknown = [key for key, host, at in keys if self.registry.state_of(key, host, at) == UNKNOWN]
            # log: several instances (the first one is named; a lone one carries its instance)
            LOG.warning('recovery intent: %d incident(s) still unknown after %.1fs (first: %s/%s); nothing says '
                        'they ended: acting', len(unknown), self.wait_s, *unknown[0],
                        instance_uuid=unknown[0][0] if len(unknown) == 1 else None)

    def _ask(self, host: str) -> None:
        now = self._clock()
        with self._asked_lock:
            if now - self._asked.get(host, -self.wait_s) < self.wait_s:
                return
            self._asked[host] = now
        LOG.info('recovery intent: asking host %s for a state report (incident unknown here)', host)
        try:
            self._ask_host(host)
        except Exception:
            LOG.exception('could not ask host %s for a state report', host)


class IntentEndpoint:
    """Notification endpoint of the intent listener: hands each intent to the carrier; returns when decided."""

    filter_rule = oslo_messaging.NotificationFilter(event_type=r'^%s$' % EVENT_INTENT.replace('.', r'\.'))

    def __init__(self, carrier: IntentCarrier) -> None:
        self.carrier = carrier

    def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, Any]) -> None:
        """Carry the intent out; oslo.messaging acknowledges it once this returns."""
        try:
            self.carrier.carry_out(payload)
        except Exception:
            # Requeued, it would come back to a controller with the same bug: logged and acknowledged.
            LOG.exception('recovery intent from %s failed', publisher_id)


def start_listener(conf: cfg.ConfigOpts, transport: oslo_messaging.Transport, carrier: IntentCarrier,
                   workers: Optional[int] = None) -> oslo_messaging.MessageHandlingServer:
    """Start consuming intents; every controller shares the queue <intent_topic>.info (no pool name).

    Listeners without a pool share the queue the publisher declares, so an
    intent published while no controller consumes waits there, and nothing
    else accumulates (a pool would get a queue of its own beside that one).
    """
    listener = oslo_messaging.get_notification_listener(transport, [intent_target(conf)], [IntentEndpoint(carrier)],
                                                        allow_requeue=False)
    listener.start(override_pool_size=workers or conf.recovery.workers)
    return listener
