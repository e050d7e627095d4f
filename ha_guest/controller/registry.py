"""The controller's fault registry: active faults keyed by (instance_uuid, incident_id)."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable
from typing import Any, NamedTuple, Optional

from ha_guest.rpc.errors import FaultRegistryFull

Key = tuple[str, str]

CLEARED_BY_RECOVERED = 'recovered'
CLEARED_BY_EXITED = 'exited'
CLEARED_BY_RESYNC = 'resync'

#: Cleared faults kept for listings (``ha-guest-status fault list --all``), newest last.
RECENT_CLEARED = 1000

#: What the registry knows of an incident (state_of).
ACTIVE, ENDED, UNKNOWN = 'active', 'ended', 'unknown'


class Cleared(NamedTuple):
    """A fault that left the registry, and how: {"cleared_at", "cleared_by"}."""

    fault: dict[str, Any]
    cleared: dict[str, Any]


class Reconciled(NamedTuple):
    """What a state report changed: faults to raise, faults re-learned silently, faults cleared."""

    added: list[dict[str, Any]]
    relearned: list[dict[str, Any]]
    cleared: list[Cleared]


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
    bring an ended incident back. ``changed`` is notified on every change
    (the recovery intents wait on it for an incident to become known).

    ``resync_clear_grace_s``: a state report of an agent that says who it is
    (its ``agent`` key: it reports recoveries and exits itself, retried until
    acknowledged) clears a fault it no longer shows only once the fault has
    been missing from its reports for that long, so that a recovery report
    on its way to another controller clears it (one ``cleared`` only).
    """

    def __init__(self, max_faults: int = 100000, resync_clear_grace_s: float = 0.0) -> None:
        if max_faults < 1:
            raise ValueError('max_faults must be at least 1')
        self.max_faults = max_faults
        self.resync_clear_grace_s = resync_clear_grace_s
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._faults: dict[Key, dict[str, Any]] = {}
        #: Recently ended incidents: (cleared_at, cleared_by) of each, oldest first.
        self._cleared: collections.OrderedDict[Key, tuple[float, str]] = collections.OrderedDict()
        #: Faults a state report of their host no longer showed: the time of the first such report.
        self._missing: dict[Key, float] = {}
        #: Per host, its latest state report: (taken at, the incidents it showed open).
        self._host_reports: dict[str, tuple[float, frozenset[Key]]] = {}
        #: The last RECENT_CLEARED faults that left the registry, with how they ended (listings only).
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_CLEARED)

    def __len__(self) -> int:
        with self.lock:
            return len(self._faults)

    def __contains__(self, key: object) -> bool:
        with self.lock:
            return key in self._faults

    def is_active(self, instance_uuid: str, incident_id: str) -> bool:
        """Return whether the incident is open (what sinks ask just before they act)."""
        return (instance_uuid, incident_id) in self

    def state_of(self, key: Key, host: Optional[str] = None, detected_at: Optional[float] = None) -> str:
        """Return ACTIVE, ENDED or UNKNOWN for an incident (``host``, ``detected_at``: ask its host's reports too).

        A state report of the host taken after ``detected_at`` tells an
        incident this registry never held: open on the host (ACTIVE, even if
        not yet announced) or not (ENDED).
        """
        with self.lock:
            if key in self._faults:
                return ACTIVE
            if key in self._cleared:
                return ENDED
            latest = self._host_reports.get(host) if host is not None else None
            if latest is None or detected_at is None or latest[0] < detected_at:
                return UNKNOWN
            return ACTIVE if key in latest[1] else ENDED

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

        A fault reported again after a state report cleared it ("resync", a
        guess) is recorded again: an explicit report wins over that guess. A
        fault of an incident that ended by its recovery or exit is a late
        copy (e.g. of a call abandoned while a broker node hung) and a
        duplicate, unless it was detected after the end.
        Raises FaultRegistryFull when ``max_faults`` faults are active.
        """
        key = key_of(fault)
        with self.lock:
            if key in self._faults:
                return False
            ended = self._cleared.get(key)
            if ended is not None and ended[1] != CLEARED_BY_RESYNC and float(fault['detected_at']) <= ended[0]:
                return False
            if len(self._faults) >= self.max_faults:
                raise FaultRegistryFull(
                    'the fault registry holds %d active faults ([controller] max_faults); refusing fault %s of '
                    'instance %s' % (self.max_faults, key[1], key[0]))
            self._cleared.pop(key, None)
            self._faults[key] = dict(fault)
            self.changed.notify_all()
            return True

    def clear(self, instance_uuid: str, incident_id: str, cleared_at: float, cleared_by: str) -> Optional[Cleared]:
        """Remove one incident; return it with how it ended, or None if unknown."""
        key = (instance_uuid, incident_id)
        with self.lock:
            fault = self._faults.pop(key, None)
            self._remember(key, cleared_at, cleared_by)
            self.changed.notify_all()
            if fault is None:
                return None
            self._recent.append(dict(fault, **cleared_info(cleared_at, cleared_by)))
            return Cleared(fault, cleared_info(cleared_at, cleared_by))

    def clear_instance(self, instance_uuid: str, cleared_at: float, cleared_by: str) -> list[Cleared]:
        """Remove every fault of an instance detected by ``cleared_at`` (its guest exited then); return them.

        A later incident is not the exit's: a late or replayed exit report leaves it open.
        """
        with self.lock:
            keys = [key for key, fault in self._faults.items()
                    if key[0] == instance_uuid and float(fault['detected_at']) <= cleared_at]
            return [self._pop(key, cleared_at, cleared_by) for key in keys]

    def reconcile(self, report: dict[str, Any]) -> Reconciled:
        """Bring the faults of ``report["host"]`` in line with its state report.

        A fault of that host that the report does not show as active is
        cleared ("resync") unless it was detected after the report was taken
        (the report is older than the fault), or, for an agent that says who
        it is, until it has been missing for ``resync_clear_grace_s``. An
        active incident the registry lacks and has not seen end is added:
        ``announced`` absent (an older agent) -> added to raise (detected at
        the report's time); True -> re-learned silently with its original
        ``detected_at`` (it was announced when its fault report was
        accepted); False -> left alone (its fault report is on its way).
        Faults past ``max_faults`` are left out (the next report retries them).
        """
        host, at = report['host'], float(report['at'])
        grace = self.resync_clear_grace_s if report.get('agent') else 0.0
        active: dict[Key, dict[str, Any]] = {}
        for item in report['instances']:
            if item.get('incident_id'):
                active[(item['instance_uuid'], item['incident_id'])] = item
        result = Reconciled([], [], [])
        with self.lock:
            latest = self._host_reports.get(host)
            if latest is None or latest[0] <= at:
                self._host_reports[host] = (at, frozenset(active))
            for key, fault in list(self._faults.items()):
                if fault['host'] != host:
                    continue
                if key in active or float(fault['detected_at']) >= at:
                    self._missing.pop(key, None)
                    continue
                since = self._missing.setdefault(key, at)
                if at - since >= grace:
                    result.cleared.append(self._pop(key, at, CLEARED_BY_RESYNC))
            for key, item in active.items():
                announced = item.get('announced')
                if (key in self._faults or key in self._cleared or announced is False
                        or len(self._faults) >= self.max_faults):
                    continue
                fault = fault_from_report(host, at, item)
                self._faults[key] = fault
                (result.relearned if announced else result.added).append(dict(fault))
            self.changed.notify_all()
        return result

    def wait_known(self, keys: Iterable[tuple[Key, str, float]], timeout: float) -> bool:
        """Wait until every (key, host, detected_at) is ACTIVE or ENDED; return whether that happened in time."""
        wanted = list(keys)
        deadline = time.monotonic() + timeout
        with self.changed:
            while any(self.state_of(*one) == UNKNOWN for one in wanted):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True

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
            if added:
                self.changed.notify_all()
        return added

    def list_cleared(self, instance_uuid: Optional[str] = None) -> list[dict[str, Any]]:
        """Return copies of the recently cleared faults (of one instance if given), oldest first."""
        with self.lock:
            return [dict(f) for f in self._recent if instance_uuid is None or f['instance_uuid'] == instance_uuid]

    def list(self, instance_uuid: Optional[str] = None) -> list[dict[str, Any]]:
        """Return copies of the active faults (of one instance if given), oldest first."""
        with self.lock:
            faults = [dict(f) for key, f in self._faults.items() if instance_uuid is None or key[0] == instance_uuid]
        faults.sort(key=lambda f: f['detected_at'])
        return faults

    def _pop(self, key: Key, cleared_at: float, cleared_by: str) -> Cleared:
        fault = self._faults.pop(key)
        self._remember(key, cleared_at, cleared_by)
        self._recent.append(dict(fault, **cleared_info(cleared_at, cleared_by)))
        self.changed.notify_all()
        return Cleared(fault, cleared_info(cleared_at, cleared_by))

    def _remember(self, key: Key, cleared_at: float, cleared_by: str) -> None:
        self._missing.pop(key, None)
        self._cleared[key] = (float(cleared_at), cleared_by)
        self._cleared.move_to_end(key)
        while len(self._cleared) > self.max_faults:
            self._cleared.popitem(last=False)


def fault_from_report(host: str, at: float, item: dict[str, Any]) -> dict[str, Any]:
    """Build a fault from an active instance of a state report (detected at its ``detected_at``, else the report's)."""
    return {
        'instance_uuid': item['instance_uuid'],
        'host': host,
        'incident_id': item['incident_id'],
        'kind': item['fault_kind'],
        'reason': item.get('reason') or '',
        'detected_at': float(item['detected_at']) if item.get('detected_at') is not None else at,
        'interval_ms': int(item.get('interval_ms') or 0),
        'misses': 0,
    }
