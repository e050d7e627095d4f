"""Rows and cells of the status listings: pure functions, the same data in every cliff format.

Times are shown as ISO 8601 UTC; a dict or list cell is a FormattableColumn,
so that json and yaml get the structure and table, csv and value a short text.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from cliff import columns

#: Heartbeat states in the order the listings show them.
STATE_ORDER = ('healthy', 'unhealthy', 'failed', 'unregistered', 'suspended', 'exited')


def iso(at: Any) -> Optional[str]:
    """Return a wall-clock time as "2026-12-06T16:05:01Z" (None stays None)."""
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at) or at <= 0:
        return None
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def age(at: Any, now: float) -> Optional[float]:
    """Return seconds since ``at`` (one decimal), None if unknown."""
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at) or at <= 0:
        return None
    return round(max(0.0, now - at), 1)


class CountsColumn(columns.FormattableColumn):
    """{state: count}: "healthy=2, failed=1" in tables, the dict in json/yaml."""

    def human_readable(self) -> str:
        counts = self._value or {}
        names = sorted(counts, key=lambda n: (STATE_ORDER.index(n) if n in STATE_ORDER else len(STATE_ORDER), n))
        return ', '.join('%s=%d' % (name, counts[name]) for name in names) or '-'

    def machine_readable(self) -> dict[str, int]:
        return dict(self._value or {})


class ListColumn(columns.FormattableColumn):
    """A list: "a, b" in tables, the list in json/yaml."""

    def human_readable(self) -> str:
        return ', '.join(str(item) for item in self._value or []) or '-'

    def machine_readable(self) -> list[Any]:
        return list(self._value or [])


FAULT_COLUMNS = ('Instance', 'Host', 'Kind', 'State', 'Reason', 'Detected At', 'Misses', 'Cleared At',
                 'Cleared By', 'Incident')


def fault_row(fault: Mapping[str, Any]) -> tuple[Any, ...]:
    """Return one fault (instance or host fault, active or cleared) as a FAULT_COLUMNS row."""
    return (fault.get('instance_uuid') or '', fault.get('host') or '', fault.get('kind') or '',
            fault.get('state') or '', fault.get('reason') or '', iso(fault.get('detected_at')),
            fault.get('misses'), iso(fault.get('cleared_at')), fault.get('cleared_by'), fault.get('incident_id'))


def host_fault_as_fault(alarm: Mapping[str, Any]) -> dict[str, Any]:
    """Return an agent-silent host fault in the shape of an instance fault (no instance)."""
    last = alarm.get('last_report_at')
    reason = 'no state report since %s' % (iso(last) or 'the controllers started')
    return {'instance_uuid': None, 'host': alarm.get('host'), 'kind': alarm.get('kind'),
            'state': alarm.get('state'), 'reason': reason, 'detected_at': alarm.get('detected_at'),
            'misses': None, 'cleared_at': alarm.get('cleared_at'), 'cleared_by': alarm.get('cleared_by'),
            'incident_id': alarm.get('incident_id')}


def sort_faults(faults: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Open faults first, each part oldest first."""
    return sorted(faults, key=lambda f: (f.get('state') != 'active', f.get('detected_at') or 0.0))


HOST_COLUMNS = ('Host', 'Status', 'Last Report At', 'Report Age (s)', 'Version', 'RPC API', 'Instances',
                'Unregistered', 'Host Fault')


def host_row(agent: Mapping[str, Any], now: float) -> tuple[Any, ...]:
    """Return one compute agent as a HOST_COLUMNS row."""
    return (agent.get('host'), agent.get('status'), iso(agent.get('last_report_at')),
            age(agent.get('last_report_at'), now), agent.get('version') or None,
            agent.get('rpc_api') or '<1.2', CountsColumn(agent.get('instances') or {}), agent.get('unregistered'),
            agent.get('host_fault'))


INSTANCE_COLUMNS = ('Instance', 'Host', 'State', 'Interval (ms)', 'Misses', 'Last Answer At', 'Latency (ms)',
                    'Connected', 'Guest Agent', 'Incident')


def instance_row(host: str, item: Mapping[str, Any]) -> tuple[Any, ...]:
    """Return one watched instance as an INSTANCE_COLUMNS row."""
    return (item.get('instance_uuid'), host, item.get('state'), item.get('interval_ms'), item.get('misses'),
            iso(item.get('last_answer_at')), item.get('last_latency_ms'), item.get('connected'),
            item.get('guest_agent'), item.get('incident_id'))


SHOW_FIELDS = ('Instance', 'Host', 'State', 'Interval (ms)', 'Miss Threshold', 'Last Answer At',
               'Last Latency (ms)', 'Max Latency (ms)', 'Challenges', 'Answers', 'Late Answers', 'Misses',
               'Open Faults', 'Recent Faults', 'Registered', 'Registered At', 'Watched Since', 'Suspended',
               'Connected', 'Guest Agent', 'Protocol Version', 'Capabilities', 'Agent Version')


def show_values(host: str, agent: Mapping[str, Any], item: Mapping[str, Any], open_faults: list[Mapping[str, Any]],
                cleared: list[Mapping[str, Any]]) -> tuple[Any, ...]:
    """Return one instance's details (the compute agent's view plus the controller's faults) as SHOW_FIELDS."""
    def describe(fault: Mapping[str, Any]) -> str:
        text = '%s %s at %s' % (fault.get('incident_id'), fault.get('kind'), iso(fault.get('detected_at')))
        if fault.get('cleared_by'):
            text += ', %s at %s' % (fault.get('cleared_by'), iso(fault.get('cleared_at')))
        return text

    return (item.get('instance_uuid'), host, item.get('state'), item.get('interval_ms'), item.get('miss_threshold'),
            iso(item.get('last_answer_at')), item.get('last_latency_ms'), item.get('max_latency_ms'),
            item.get('challenges'), item.get('answers'), item.get('late_answers'), item.get('misses'),
            ListColumn([describe(f) for f in open_faults]), ListColumn([describe(f) for f in cleared]),
            item.get('registered'), iso(item.get('registered_at')), iso(item.get('watched_since')),
            item.get('suspended'), item.get('connected'), item.get('guest_agent'), item.get('protocol_version'),
            ListColumn(item.get('capabilities') or []), agent.get('version'))
