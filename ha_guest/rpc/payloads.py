"""The dict payloads of the ha_guest RPC APIs: their keys and checks.

Each function returns a new dict with exactly the documented keys, so what
travels on the wire (and reaches the fault sinks) never depends on what a
caller happened to put in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from ha_guest.rpc.errors import InvalidPayload

FAULT_KEYS = ('instance_uuid', 'host', 'incident_id', 'kind', 'reason', 'detected_at', 'interval_ms', 'misses')
RECOVERY_KEYS = ('instance_uuid', 'host', 'incident_id', 'recovered_at')
EXIT_KEYS = ('instance_uuid', 'host', 'reason', 'at')
REPORT_KEYS = ('host', 'at', 'instances')
REPORT_INSTANCE_KEYS = ('instance_uuid', 'state', 'interval_ms', 'incident_id', 'fault_kind', 'reason')
# Optional keys (API 1.2; absent: an older compute agent): report "agent" {version, started_at,
# report_interval_s}; per instance the open incident's original detected_at, announced (a controller
# acknowledged its fault), registered (its guest registered) and since (running here since, wall clock).
REPORT_AGENT_NUMBERS = ('started_at', 'report_interval_s')
REPORT_INSTANCE_NUMBERS = ('detected_at', 'since')
REPORT_INSTANCE_FLAGS = ('announced', 'registered')

KIND_MISSED = 'missed'
KIND_UNHEALTHY = 'unhealthy'
FAULT_KINDS = (KIND_MISSED, KIND_UNHEALTHY)


def _mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidPayload('%s must be a dict, not %s' % (what, type(data).__name__))
    return data


def _text(data: Mapping[str, Any], key: str, what: str, *, required: bool = True) -> Optional[str]:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidPayload('%s: %r must be a non-empty string, not %r' % (what, key, value))
    return value


def _number(data: Mapping[str, Any], key: str, what: str, default: Optional[float] = None) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPayload('%s: %r must be a number, not %r' % (what, key, value))
    return float(value)


def _count(data: Mapping[str, Any], key: str, what: str) -> int:
    value = data.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidPayload('%s: %r must be a non-negative integer, not %r' % (what, key, value))
    return value


def _kind(value: Any, what: str, key: str = 'kind') -> str:
    if value not in FAULT_KINDS:
        raise InvalidPayload('%s: %r must be one of %s, not %r' % (what, key, ', '.join(FAULT_KINDS), value))
    return str(value)


def fault(data: Any) -> dict[str, Any]:
    """Check a fault report; return it with exactly FAULT_KEYS."""
    what = 'fault'
    data = _mapping(data, what)
    return {
        'instance_uuid': _text(data, 'instance_uuid', what),
        'host': _text(data, 'host', what),
        'incident_id': _text(data, 'incident_id', what),
        'kind': _kind(data.get('kind'), what),
        'reason': str(data.get('reason') or ''),
        'detected_at': _number(data, 'detected_at', what),
        'interval_ms': _count(data, 'interval_ms', what),
        'misses': _count(data, 'misses', what),
    }


def recovery(data: Any) -> dict[str, Any]:
    """Check a recovery report; return it with exactly RECOVERY_KEYS."""
    what = 'recovery'
    data = _mapping(data, what)
    return {
        'instance_uuid': _text(data, 'instance_uuid', what),
        'host': _text(data, 'host', what),
        'incident_id': _text(data, 'incident_id', what),
        'recovered_at': _number(data, 'recovered_at', what),
    }


def exit_report(data: Any) -> dict[str, Any]:
    """Check an exit report (the guest ended monitoring); return it with exactly EXIT_KEYS."""
    what = 'exit'
    data = _mapping(data, what)
    return {
        'instance_uuid': _text(data, 'instance_uuid', what),
        'host': _text(data, 'host', what),
        'reason': str(data.get('reason') or ''),
        'at': _number(data, 'at', what),
    }


def _report_instance(data: Any, index: int) -> dict[str, Any]:
    what = 'state report instances[%d]' % index
    data = _mapping(data, what)
    incident_id = _text(data, 'incident_id', what, required=False)
    fault_kind = data.get('fault_kind')
    if incident_id is not None:
        fault_kind = _kind(fault_kind, what, 'fault_kind')
    elif fault_kind is not None:
        raise InvalidPayload('%s: fault_kind %r without an incident_id' % (what, fault_kind))
    item = {
        'instance_uuid': _text(data, 'instance_uuid', what),
        'state': _text(data, 'state', what),
        'interval_ms': _count(data, 'interval_ms', what),
        'incident_id': incident_id,
        'fault_kind': fault_kind,
        'reason': str(data.get('reason') or ''),
    }
    # Optional keys of newer agents (absent: an older agent, and the controller behaves as it always did).
    for key in ('detected_at', 'since'):
        if data.get(key) is not None:
            item[key] = _number(data, key, what)
    for key in ('announced', 'registered'):
        if key in data:
            if not isinstance(data[key], bool):
                raise InvalidPayload('%s: %r must be true or false, not %r' % (what, key, data[key]))
            item[key] = data[key]
    return item


def state_report(data: Any) -> dict[str, Any]:
    """Check a compute agent's state report; return it with exactly REPORT_KEYS."""
    what = 'state report'
    data = _mapping(data, what)
    instances = data.get('instances')
    if not isinstance(instances, list):
        raise InvalidPayload('%s: %r must be a list, not %r' % (what, 'instances', type(instances).__name__))
    report: dict[str, Any] = {
        'host': _text(data, 'host', what),
        'at': _number(data, 'at', what),
        'instances': [_report_instance(item, i) for i, item in enumerate(instances)],
    }
    agent = data.get('agent')
    if agent is not None:
        agent = _mapping(agent, '%s: agent' % what)
        report['agent'] = {'version': str(agent.get('version') or ''),
                           'started_at': _number(agent, 'started_at', '%s: agent' % what, 0.0),
                           'report_interval_s': _number(agent, 'report_interval_s', '%s: agent' % what, 0.0)}
        rpc_api = agent.get('rpc_api')  # the agent's ComputeAPI version (from 1.2 on), for ha-guest-status
        if isinstance(rpc_api, str) and 0 < len(rpc_api) <= 16:
            report['agent']['rpc_api'] = rpc_api
    return report


# -- report_batch (controller API 1.2) -------------------------------------------------------------

#: Most reports one report_batch call carries (a compute agent sends more as several calls).
MAX_BATCH = 1000
TYPE_FAULT = 'fault'
TYPE_RECOVERY = 'recovery'
TYPE_EXIT = 'exit'
_BATCH_CHECKS = {TYPE_FAULT: fault, TYPE_RECOVERY: recovery, TYPE_EXIT: exit_report}
REPORT_TYPES = tuple(_BATCH_CHECKS)


def batch_list(data: Any) -> list[Any]:
    """Check a batch's envelope (a list of at most MAX_BATCH items); its items are checked one by one."""
    if not isinstance(data, list):
        raise InvalidPayload('report batch must be a list, not %s' % type(data).__name__)
    if len(data) > MAX_BATCH:
        raise InvalidPayload('report batch: %d reports, at most %d' % (len(data), MAX_BATCH))
    return data


def batch_item(data: Any) -> dict[str, Any]:
    """Check one report of a batch: {"type": "fault"|"recovery"|"exit", "payload": <its 1.0 payload>}."""
    data = _mapping(data, 'report batch item')
    kind = data.get('type')
    check = _BATCH_CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        raise InvalidPayload('report batch item: %r must be one of %s, not %r'
                             % ('type', ', '.join(REPORT_TYPES), kind))
    return {'type': kind, 'payload': check(data.get('payload'))}


def batch(data: Any) -> list[dict[str, Any]]:
    """Check a whole batch (every item must be valid); return it with exactly the documented keys."""
    return [batch_item(item) for item in batch_list(data)]


def batch_answer(data: Any, count: int) -> dict[str, list[dict[str, Any]]]:
    """Check a controller's answer to a batch of ``count`` reports: one result per report, in order."""
    data = _mapping(data, 'report batch answer')
    results = data.get('results')
    if not isinstance(results, list) or len(results) != count:
        raise InvalidPayload('report batch answer: %r must be a list of %d results, not %r'
                             % ('results', count, results))
    checked: list[dict[str, Any]] = []
    for index, item in enumerate(results):
        item = _mapping(item, 'report batch answer results[%d]' % index)
        if 'error' in item:
            checked.append({'error': str(item['error'])})
        else:
            checked.append({'duplicate': bool(item.get('duplicate'))})
    return {'results': checked}
