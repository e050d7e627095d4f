"""The watchers' open alarms: silent compute agents (host faults) and instances whose guest never registered.

One controller (the leader, watch_leader.py) opens and closes them; the others
adopt the leader's list from its beats. A memory of recently closed incidents
keeps a replayed beat from bringing a closed alarm back.
"""

from __future__ import annotations

import collections
import threading
import uuid
from typing import Any, Optional

#: Notification event types of the watchers (every notification sink sends them).
EVENT_HOST_FAULT_RAISED = 'ha_guest.host.fault.raised'
EVENT_HOST_FAULT_CLEARED = 'ha_guest.host.fault.cleared'
EVENT_UNREGISTERED_RAISED = 'ha_guest.instance.unregistered.raised'
EVENT_UNREGISTERED_CLEARED = 'ha_guest.instance.unregistered.cleared'

KIND_AGENT_SILENT = 'agent_silent'
KIND_UNREGISTERED = 'unregistered'

#: Why a host fault ended: its agent reported again.
CLEARED_BY_REPORTED = 'reported'

SCOPE_HOST = 'host'
SCOPE_INSTANCE = 'instance'

STATE_ACTIVE = 'active'
STATE_CLEARED = 'cleared'

HOST_FAULT_KEYS = ('host', 'kind', 'incident_id', 'detected_at', 'last_report_at', 'state', 'cleared_at',
                   'cleared_by')
UNREGISTERED_KEYS = ('instance_uuid', 'host', 'kind', 'incident_id', 'since', 'detected_at', 'state', 'cleared_at',
                     'cleared_by')

Key = tuple[str, str]


def key_of(alarm: dict[str, Any]) -> Key:
    """Return (scope, subject): ("host", host) or ("instance", instance_uuid)."""
    if alarm.get('kind') == KIND_AGENT_SILENT:
        return (SCOPE_HOST, alarm['host'])
    return (SCOPE_INSTANCE, alarm['instance_uuid'])


def event_type(alarm: dict[str, Any]) -> str:
    """Return the notification event type of an alarm in its state."""
    raised = alarm['state'] == STATE_ACTIVE
    if alarm['kind'] == KIND_AGENT_SILENT:
        return EVENT_HOST_FAULT_RAISED if raised else EVENT_HOST_FAULT_CLEARED
    return EVENT_UNREGISTERED_RAISED if raised else EVENT_UNREGISTERED_CLEARED


def host_fault(host: str, detected_at: float, last_report_at: Optional[float]) -> dict[str, Any]:
    """Return a new host fault (a compute agent went silent)."""
    return {'host': host, 'kind': KIND_AGENT_SILENT, 'incident_id': uuid.uuid4().hex, 'detected_at': detected_at,
            'last_report_at': last_report_at, 'state': STATE_ACTIVE, 'cleared_at': None, 'cleared_by': None}


def unregistered_alarm(instance_uuid: str, host: str, since: float, detected_at: float) -> dict[str, Any]:
    """Return a new alarm for an instance whose guest has not registered since ``since``."""
    return {'instance_uuid': instance_uuid, 'host': host, 'kind': KIND_UNREGISTERED,
            'incident_id': uuid.uuid4().hex, 'since': since, 'detected_at': detected_at, 'state': STATE_ACTIVE,
            'cleared_at': None, 'cleared_by': None}


def valid(alarm: Any) -> bool:
    """Return whether a peer's alarm has what this module needs."""
    if not isinstance(alarm, dict) or not isinstance(alarm.get('incident_id'), str):
        return False
    if alarm.get('kind') == KIND_AGENT_SILENT:
        return isinstance(alarm.get('host'), str)
    return alarm.get('kind') == KIND_UNREGISTERED and isinstance(alarm.get('instance_uuid'), str)


class WatchAlarms:
    """Open watcher alarms by (scope, subject), and a bounded memory of closed incidents."""

    def __init__(self, memory: int = 10000) -> None:
        self.lock = threading.RLock()
        self._open: dict[Key, dict[str, Any]] = {}
        self._closed: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._memory = memory

    def get(self, key: Key) -> Optional[dict[str, Any]]:
        """Return a copy of the open alarm under ``key``."""
        with self.lock:
            alarm = self._open.get(key)
            return dict(alarm) if alarm is not None else None

    def open(self, alarm: dict[str, Any]) -> bool:
        """Record a new alarm; False if one is open for its subject already."""
        with self.lock:
            key = key_of(alarm)
            if key in self._open:
                return False
            self._open[key] = dict(alarm)
            return True

    def close(self, key: Key, cleared_at: float, cleared_by: str) -> Optional[dict[str, Any]]:
        """Close the alarm under ``key``; return it cleared (None when none was open)."""
        with self.lock:
            alarm = self._open.pop(key, None)
            if alarm is None:
                return None
            self._remember(alarm['incident_id'])
            return dict(alarm, state=STATE_CLEARED, cleared_at=cleared_at, cleared_by=cleared_by)

    def adopt(self, alarms: list[dict[str, Any]], replace: bool = True) -> tuple[int, int]:
        """Make the open set the leader's ``alarms``, silently; return (added, dropped).

        ``replace`` False: only add (what a peer holds, when no leader was heard yet).
        """
        with self.lock:
            wanted = {key_of(a): a for a in alarms if valid(a) and a['incident_id'] not in self._closed}
            dropped = [key for key, alarm in self._open.items()
                       if replace and (key not in wanted or wanted[key]['incident_id'] != alarm['incident_id'])]
            for key in dropped:
                self._remember(self._open.pop(key)['incident_id'])
            added = 0
            for key, alarm in wanted.items():
                if key not in self._open:
                    self._open[key] = dict(alarm, state=STATE_ACTIVE)
                    added += 1
        return added, len(dropped)

    def list(self, scope: Optional[str] = None) -> list[dict[str, Any]]:
        """Return copies of the open alarms (of one scope if given), oldest first."""
        with self.lock:
            alarms = [dict(a) for key, a in self._open.items() if scope is None or key[0] == scope]
        alarms.sort(key=lambda a: a['detected_at'])
        return alarms

    def _remember(self, incident_id: str) -> None:
        self._closed[incident_id] = None
        self._closed.move_to_end(incident_id)
        while len(self._closed) > self._memory:
            self._closed.popitem(last=False)
