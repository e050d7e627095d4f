"""Nova's versioned notifications as server group messaging sees them: parsing, checks, the listener.

parse() is pure: (event_type, payload) in, one *update* dict out (or None for
events that are not forwarded). The same update dicts travel to the peer
controllers in ControllerSyncAPI.sync_members, so check_update() guards what
a peer sends. Shapes:

    member update  {"kind": "member", "event", "member", "state", "power_state", "host", "host_given"}
    add_member     {"kind": "add_member", "event", "group", "members": [uuid, ...]}
    group_delete   {"kind": "group_delete", "event", "group"}

UUIDs are canonical lower case; "state" is Nova's vm_state ("deleted" after
instance.delete.end), "power_state" Nova's name or "".
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Optional

import oslo_messaging
from oslo_config import cfg
from oslo_log import log as logging

from ha_guest.conf import sgm as sgm_conf
from ha_guest.controller.sgm_directory import DELETED, power_state_name
from ha_guest.protocol.limits import MAX_TOKEN_CHARS
from ha_guest.rpc.errors import InvalidPayload
from ha_guest.rpc.sgm_payloads import MAX_RECIPIENTS, canonical_uuid

LOG = logging.getLogger(__name__)

#: Instance events that become a peer notification (protocol.rst lists the same).
INSTANCE_EVENTS = frozenset({
    'instance.create.end', 'instance.delete.end', 'instance.power_off.end', 'instance.power_on.end',
    'instance.reboot.start', 'instance.reboot.end', 'instance.pause.end', 'instance.unpause.end',
    'instance.suspend.end', 'instance.resume.end', 'instance.rebuild.end', 'instance.evacuate',
    'instance.live_migration_post_dest.end', 'instance.resize_finish.end', 'instance.resize_revert.end',
    'instance.shelve.end', 'instance.shelve_offload.end', 'instance.unshelve.end', 'instance.soft_delete.end',
    'instance.restore.end', 'instance.rescue.end', 'instance.unrescue.end',
})
ADD_MEMBER = 'server_group.add_member'
GROUP_DELETE = 'server_group.delete'
DELETE_END = 'instance.delete.end'
EVENT_TYPES = INSTANCE_EVENTS | {ADD_MEMBER, GROUP_DELETE}
#: Nova's versioned payloads keep their fields under this key.
DATA = 'nova_object.data'

KIND_MEMBER = 'member'
KIND_ADD_MEMBER = 'add_member'
KIND_GROUP_DELETE = 'group_delete'


def _data(payload: Any) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping) or not isinstance(payload.get(DATA), Mapping):
        raise InvalidPayload('not a versioned notification payload (no %r)' % DATA)
    return payload[DATA]


#: Longest host name kept (a fully qualified one may exceed a token's length).
MAX_HOST_CHARS = 255


def _token(value: Any, limit: int = MAX_TOKEN_CHARS) -> str:
    return value if isinstance(value, str) and len(value) <= limit else ''


def event_time(metadata: Any) -> float:
    """Return when Nova sent a notification (epoch seconds), from oslo.messaging's metadata; now if it lacks it."""
    stamp = metadata.get('timestamp') if isinstance(metadata, Mapping) else None
    if isinstance(stamp, str):
        try:
            parsed = datetime.datetime.fromisoformat(stamp[:32])
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=datetime.timezone.utc)  # oslo.messaging writes UTC
            return parsed.timestamp()
    return time.time()


def parse(event_type: str, payload: Any, at: Optional[float] = None) -> Optional[dict[str, Any]]:
    """Return the update a Nova notification sent at ``at`` means, None if it is not forwarded.

    InvalidPayload if malformed. ``at`` (epoch seconds; default now) orders
    the updates of one member or group: an older one never overwrites a newer.
    """
    if event_type not in EVENT_TYPES:
        return None
    at = time.time() if at is None else float(at)
    data = _data(payload)
    if event_type == GROUP_DELETE:
        return {'kind': KIND_GROUP_DELETE, 'event': event_type, 'group': canonical_uuid(data.get('uuid'), 'group'),
                'at': at}
    if event_type == ADD_MEMBER:
        members = data.get('members') or []
        if not isinstance(members, list) or len(members) > MAX_RECIPIENTS:
            raise InvalidPayload('server group members must be a list of at most %d UUIDs' % MAX_RECIPIENTS)
        return {'kind': KIND_ADD_MEMBER, 'event': event_type, 'group': canonical_uuid(data.get('uuid'), 'group'),
                'members': [canonical_uuid(uuid, 'group member') for uuid in members], 'at': at}
    state = DELETED if event_type == DELETE_END else _token(data.get('state'))
    host = data.get('host')
    return {
        'kind': KIND_MEMBER, 'event': event_type, 'member': canonical_uuid(data.get('uuid'), 'instance uuid'),
        'state': state, 'power_state': power_state_name(data.get('power_state')),
        # A deleted instance's host tells nothing; otherwise the payload's host is where it runs now.
        'host': _token(host, MAX_HOST_CHARS) or None, 'host_given': event_type != DELETE_END and 'host' in data,
        'at': at,
    }


def check_update(data: Any) -> dict[str, Any]:
    """Check an update a peer controller sent; return it with exactly the documented keys."""
    if not isinstance(data, Mapping):
        raise InvalidPayload('update must be a dict')
    kind, event, at = data.get('kind'), data.get('event'), data.get('at', time.time())
    if event not in EVENT_TYPES:
        raise InvalidPayload('update: unknown event %r' % (event,))
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        raise InvalidPayload('update: at must be a number, not %r' % (at,))
    at = float(at)
    if kind == KIND_GROUP_DELETE:
        return {'kind': kind, 'event': event, 'group': canonical_uuid(data.get('group'), 'group'), 'at': at}
    if kind == KIND_ADD_MEMBER:
        members = data.get('members')
        if not isinstance(members, list) or len(members) > MAX_RECIPIENTS:
            raise InvalidPayload('update: members must be a list of at most %d UUIDs' % MAX_RECIPIENTS)
        return {'kind': kind, 'event': event, 'group': canonical_uuid(data.get('group'), 'group'),
                'members': [canonical_uuid(uuid, 'member') for uuid in members], 'at': at}
    if kind == KIND_MEMBER:
        host = data.get('host')
        if host is not None and not _token(host, MAX_HOST_CHARS):
            raise InvalidPayload('update: bad host %r' % (host,))
        return {'kind': kind, 'event': event, 'member': canonical_uuid(data.get('member'), 'member'),
                'state': _token(data.get('state')), 'power_state': power_state_name(data.get('power_state')),
                'host': host, 'host_given': bool(data.get('host_given')), 'at': at}
    raise InvalidPayload('update: unknown kind %r' % (kind,))


class NovaNotificationEndpoint:
    """Notification listener endpoint: hands each forwarded Nova event, parsed, to ``on_update``."""

    # Only our events reach info(); the rest are acknowledged by oslo.messaging without a call.
    filter_rule = oslo_messaging.NotificationFilter(
        event_type='^(%s)$' % '|'.join(re.escape(name) for name in sorted(EVENT_TYPES)))

    def __init__(self, on_update: Callable[[dict[str, Any]], None]) -> None:
        self._on_update = on_update
        self.malformed = 0

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any) -> None:
        """One of Nova's info notifications."""
        try:
            update = parse(event_type, payload, event_time(metadata))
        except InvalidPayload as exc:
            self.malformed += 1
            LOG.warning('malformed Nova notification %s from %s ignored: %s', event_type, publisher_id, exc)
            return
        if update is not None:
            self._on_update(update)


def get_listener(conf: cfg.ConfigOpts, transport: oslo_messaging.Transport,
                 endpoint: NovaNotificationEndpoint) -> oslo_messaging.MessageHandlingServer:
    """Return a (not started) listener on Nova's topics and exchange, in [sgm] notification_pool."""
    opts = conf[sgm_conf.GROUP]
    targets = [oslo_messaging.Target(topic=topic, exchange=opts.notification_exchange)
               for topic in opts.notification_topics]
    # No executor named: the threading executor is the default (and naming it warns).
    return oslo_messaging.get_notification_listener(transport, targets, [endpoint],
                                                    pool=opts.notification_pool or None)
