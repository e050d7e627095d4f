"""The dict payloads of server group messaging over RPC: their keys and checks.

Compute agents send ``broadcast`` batches to a controller; controllers send
``delivery``, ``notification`` and ``nack`` batches to the compute agents of
the recipients (one cast per destination host), and answer ``status`` calls.
Every function returns a new dict with exactly the documented keys; UUIDs
come out in canonical lower-case form.
"""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import Mapping
from typing import Any, Optional

from ha_guest.protocol.limits import MAX_BROADCAST_BYTES, MAX_REASON_CHARS, MAX_TOKEN_CHARS
from ha_guest.rpc.errors import InvalidPayload

BROADCAST_KEYS = ('sender', 'host', 'session', 'ref_seq', 'payload', 'stamp', 'sent_at')
DELIVERY_KEYS = ('sender', 'recipients', 'payload', 'stamp', 'sent_at')
NOTIFICATION_KEYS = ('recipients', 'member', 'event', 'state', 'power_state')
NACK_KEYS = ('instance_uuid', 'session', 'ref_seq', 'reason', 'detail')
MEMBER_KEYS = ('uuid', 'state', 'power_state')

#: base64 of MAX_BROADCAST_BYTES bytes.
MAX_PAYLOAD_CHARS = (MAX_BROADCAST_BYTES + 2) // 3 * 4
#: Most recipients one delivery or notification may name (far above any sane group on one host).
MAX_RECIPIENTS = 1000
#: Most items in one batch cast.
MAX_BATCH = 10000


def canonical_uuid(value: Any, what: str = 'uuid') -> str:
    """Return ``value`` as a canonical lower-case UUID string, or raise InvalidPayload."""
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidPayload('%s must be a UUID string, not %r' % (what, value))
    try:
        return str(uuid_mod.UUID(value))
    except ValueError:
        raise InvalidPayload('%s must be a UUID, not %r' % (what, value)) from None


def _mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidPayload('%s must be a dict, not %s' % (what, type(data).__name__))
    return data


def _str(data: Mapping[str, Any], key: str, what: str, max_chars: int, *, allow_empty: bool = False) -> str:
    value = data.get(key, '' if allow_empty else None)
    if value is None and allow_empty:
        value = ''
    if not isinstance(value, str) or (not allow_empty and not value) or len(value) > max_chars:
        raise InvalidPayload('%s: %r must be a string of at most %d characters, not %r'
                             % (what, key, max_chars, value))
    return value


def _int(data: Mapping[str, Any], key: str, what: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidPayload('%s: %r must be a non-negative integer, not %r' % (what, key, value))
    return value


def _float(data: Mapping[str, Any], key: str, what: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPayload('%s: %r must be a number, not %r' % (what, key, value))
    return float(value)


def _recipients(data: Mapping[str, Any], what: str) -> list[str]:
    value = data.get('recipients')
    if not isinstance(value, list) or not value or len(value) > MAX_RECIPIENTS:
        raise InvalidPayload('%s: recipients must be a list of 1 to %d UUIDs' % (what, MAX_RECIPIENTS))
    return [canonical_uuid(item, what + ' recipient') for item in value]


def batch(items: Any, what: str) -> list[Any]:
    """Check that a batch is a list of at most MAX_BATCH items."""
    if not isinstance(items, list) or len(items) > MAX_BATCH:
        raise InvalidPayload('%s must be a list of at most %d items' % (what, MAX_BATCH))
    return items


def broadcast(data: Any) -> dict[str, Any]:
    """Check one guest broadcast as a compute agent hands it to a controller."""
    what = 'broadcast'
    data = _mapping(data, what)
    return {
        'sender': canonical_uuid(data.get('sender'), what + ' sender'),
        'host': _str(data, 'host', what, 255),
        'session': _str(data, 'session', what, MAX_TOKEN_CHARS),
        'ref_seq': _int(data, 'ref_seq', what),
        'payload': _str(data, 'payload', what, MAX_PAYLOAD_CHARS, allow_empty=True),
        'stamp': _int(data, 'stamp', what),
        'sent_at': _float(data, 'sent_at', what),
    }


def delivery(data: Any) -> dict[str, Any]:
    """Check one broadcast as a controller hands it to the compute agent of some recipients."""
    what = 'delivery'
    data = _mapping(data, what)
    return {
        'sender': canonical_uuid(data.get('sender'), what + ' sender'),
        'recipients': _recipients(data, what),
        'payload': _str(data, 'payload', what, MAX_PAYLOAD_CHARS, allow_empty=True),
        'stamp': _int(data, 'stamp', what),
        'sent_at': _float(data, 'sent_at', what),
    }


def notification(data: Any) -> dict[str, Any]:
    """Check one peer state change as a controller hands it to the compute agent of some recipients."""
    what = 'notification'
    data = _mapping(data, what)
    return {
        'recipients': _recipients(data, what),
        'member': canonical_uuid(data.get('member'), what + ' member'),
        'event': _str(data, 'event', what, MAX_TOKEN_CHARS),
        'state': _str(data, 'state', what, MAX_TOKEN_CHARS),
        'power_state': _str(data, 'power_state', what, MAX_TOKEN_CHARS, allow_empty=True),
    }


def nack(data: Any) -> dict[str, Any]:
    """Check one refusal of a broadcast that a controller sends back to the sender's compute agent."""
    what = 'nack'
    data = _mapping(data, what)
    detail = data.get('detail') or ''
    if not isinstance(detail, str):
        raise InvalidPayload('%s: detail must be a string' % what)
    return {
        'instance_uuid': canonical_uuid(data.get('instance_uuid'), what + ' instance_uuid'),
        'session': _str(data, 'session', what, MAX_TOKEN_CHARS),
        'ref_seq': _int(data, 'ref_seq', what),
        'reason': _str(data, 'reason', what, MAX_TOKEN_CHARS),
        'detail': detail[:MAX_REASON_CHARS],
    }


def member(data: Any) -> dict[str, Any]:
    """Check one member of a status answer."""
    what = 'member'
    data = _mapping(data, what)
    return {
        'uuid': canonical_uuid(data.get('uuid'), what + ' uuid'),
        'state': _str(data, 'state', what, MAX_TOKEN_CHARS),
        'power_state': _str(data, 'power_state', what, MAX_TOKEN_CHARS, allow_empty=True),
    }


def status_answer(data: Any) -> dict[str, Any]:
    """Check a controller's answer to sgm_status: {"members": [...]} or {"nack": reason, "detail": text}."""
    what = 'status answer'
    data = _mapping(data, what)
    reason: Optional[str] = data.get('nack')
    if reason is not None:
        return {'nack': _str(data, 'nack', what, MAX_TOKEN_CHARS),
                'detail': str(data.get('detail') or '')[:MAX_REASON_CHARS]}
    members = data.get('members')
    if not isinstance(members, list) or len(members) > MAX_RECIPIENTS:
        raise InvalidPayload('%s: members must be a list of at most %d members' % (what, MAX_RECIPIENTS))
    return {'members': [member(item) for item in members]}
