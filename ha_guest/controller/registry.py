"""The controller's fault registry: active faults keyed by (instance_uuid, incident_id)."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable
from typing import Any, NamedTuple, Optional

from ha_guest.rpc.errors import FaultRegistryFull

Key = tuple[str, str]

CLEARED_BY_RECOVERED = 'recovered'
CLEARED_BY_EXITED = 'exited'
CLEARED_BY_RESYNC = 'resync'


class Cleared(NamedTuple):
    """A fault that left the registry, and how: {"cleared_at", "cleared_by"}."""

    fault: dict[str, Any]
    cleared: dict[str, Any]


def key_of(fault: dict[str, Any]) -> Key:
    """Return the registry key of a fault."""
    return (fault['instance_uuid'], fault['incident_id'])


def cleared_info(cleared_at: float, cleared_by: str) -> dict[str, Any]:
    """Return the "how it ended" dict handed to sinks with a cleared fault."""
    return {'cleared_at': cleared_at, 'cleared_by': cleared_by}


class FaultRegistry:
    """Active faults, each raised once; cleared by recovery, exit or a state report.

    Thread-safe: RPC methods run in oslo.messaging's thread pool. Callers that
    must act on a change in the same order as the changes happen (sink
    dispatch) hold ``lock`` (re-entrant) around the change and the action.
    Bounded: at most ``max_faults`` active faults, and a memory of the last
    ``max_faults`` cleared incidents, so that a stale state report does not
    bring an ended incident back.
    """

    def __init__(self, max_faults: int = 100000) -> None:
        if max_faults < 1:
            raise ValueError('max_faults must be at least 1')
        self.max_faults = max_faults
        self.lock = threading.RLock()
        self._faults: dict[Key, dict[str, Any]] = {}
        self._cleared: collections.OrderedDict[Key, None] = collections.OrderedDict()

    def __len__(self) -> int:
        with self.lock:
            return len(self._faults)

    def __contains__(self, key: object) -> bool:
        with self.lock:
            return key in self._faults

    def is_active(self, instance_uuid: str, incident_id: str) -> bool:
        """Return whether the incident is open (what sinks ask just before they act)."""
        return (instance_uuid, incident_id) in self

    def get(self, key: Key) -> Optional[dict[str, Any]]:
        """Return a copy of the fault under ``key``, or None."""
        with self.lock:
            fault = self._faults.get(key)
            return dict(fault) if fault is not None else None

    def was_cleared(self, key: Key) -> bool:
        """Return whether the incident ``key`` ended recently (within the memory bound)."""
        with self.lock:
            return key in self._cleared

    def add(self, fault: dict[str, Any]) -> bool:
        """Record a fault; return False if it is known already (a duplicate).

        A fault reported again after it was cleared is recorded again: an
        explicit report wins over the memory of cleared incidents.
        Raises FaultRegistryFull when ``max_faults`` faults are active.
        """
        key = key_of(fault)
        with self.lock:
            if key in self._faults:
                return False
            if len(self._faults) >= self.max_faults:
                raise FaultRegistryFull(
                    'the fault registry holds %d active faults ([controller] max_faults); refusing fault %s of '
                    'instance %s' % (self.max_faults, key[1], key[0]))
            self._cleared.pop(key, None)
            self._faults[key] = dict(fault)
            return True

    def clear(self, instance_uuid: str, incident_id: str, cleared_at: float, cleared_by: str) -> Optional[Cleared]:
        """Remove one incident; return it with how it ended, or None if unknown."""
        key = (instance_uuid, incident_id)
        with self.lock:
            fault = self._faults.pop(key, None)
            self._remember(key)
            if fault is None:
                return None
            return Cleared(fault, cleared_info(cleared_at, cleared_by))

    def clear_instance(self, instance_uuid: str, cleared_at: float, cleared_by: str) -> list[Cleared]:
        """Remove every fault of an instance (its guest exited); return them."""
        with self.lock:
            keys = [key for key in self._faults if key[0] == instance_uuid]
            return [self._pop(key, cleared_at, cleared_by) for key in keys]

    def reconcile(self, report: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Cleared]]:
        """Bring the faults of ``report["host"]`` in line with its state report.

        Returns (added, cleared). A fault of that host that the report does not
        show as active is cleared ("resync") unless it was detected after the
        report was taken (the report is older than the fault). An active fault
        the registry lacks is added, unless that incident ended recently.
        Faults past ``max_faults`` are left out (the next report retries them).
        """
        host, at = report['host'], float(report['at'])
        active: dict[Key, dict[str, Any]] = {}
        for item in report['instances']:
            if item.get('incident_id'):
                active[(item['instance_uuid'], item['incident_id'])] = item
        with self.lock:
            cleared = [
                self._pop(key, at, CLEARED_BY_RESYNC)
                for key, fault in list(self._faults.items())
                if fault['host'] == host and key not in active and float(fault['detected_at']) < at
            ]
            added = []
            for key, item in active.items():
                if key in self._faults or key in self._cleared or len(self._faults) >= self.max_faults:
                    continue
                fault = fault_from_report(host, at, item)
                self._faults[key] = fault
                added.append(dict(fault))
        return added, cleared

    def merge(self, faults: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add peers' faults that are neither known nor recently cleared; return those added."""
        added = []
        with self.lock:
            for fault in faults:
                key = key_of(fault)
                if key in self._faults or key in self._cleared or len(self._faults) >= self.max_faults:
                    continue
                self._faults[key] = dict(fault)
                added.append(dict(fault))
        return added

    def list(self, instance_uuid: Optional[str] = None) -> list[dict[str, Any]]:
        """Return copies of the active faults (of one instance if given), oldest first."""
        with self.lock:
            faults = [dict(f) for key, f in self._faults.items() if instance_uuid is None or key[0] == instance_uuid]
        faults.sort(key=lambda f: f['detected_at'])
        return faults

    def _pop(self, key: Key, cleared_at: float, cleared_by: str) -> Cleared:
        fault = self._faults.pop(key)
        self._remember(key)
        return Cleared(fault, cleared_info(cleared_at, cleared_by))

    def _remember(self, key: Key) -> None:
        self._cleared[key] = None
        self._cleared.move_to_end(key)
        while len(self._cleared) > self.max_faults:
            self._cleared.popitem(last=False)


def fault_from_report(host: str, at: float, item: dict[str, Any]) -> dict[str, Any]:
    """Build a fault from an active instance of a state report (its detection time is unknown: the report's)."""
    return {
        'instance_uuid': item['instance_uuid'],
        'host': host,
        'incident_id': item['incident_id'],
        'kind': item['fault_kind'],
        'reason': item.get('reason') or '',
        'detected_at': at,
        'interval_ms': int(item.get('interval_ms') or 0),
        'misses': 0,
    }
