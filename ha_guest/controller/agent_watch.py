"""What the controllers know of each compute agent: when it last reported, and its unregistered instances.

Compute agents cast their state reports to the controllers' topic, so each
controller receives only some of them. Every controller records the reports it
receives (``observe``) and passes what it learned to its peers in its next
beat (``take_delta``); peers merge it (``merge``). Merging is idempotent and
order-free: the newest report of a host wins, whoever received it, so a
replayed or late beat changes nothing.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

#: Why an instance left its host's unregistered list.
LEFT_REGISTERED = 'registered'
LEFT_GONE = 'gone'
#: Most distinct heartbeat states counted per agent (a bound against odd reports).
MAX_STATES = 16


@dataclass
class AgentRecord:
    """One compute agent as the controllers know it."""

    host: str
    seen_at: float  # controller wall time of the newest report (any controller)
    report_at: float  # the agent's own time of that report ("at"), orders reports of one host
    interval_s: Optional[float] = None  # the agent's report interval ("agent" key), None: an older agent
    version: Optional[str] = None
    rpc_api: Optional[str] = None  # the agent's compute RPC API version (None: an agent before 1.2)
    states: dict[str, int] = field(default_factory=dict)  # instances by heartbeat state, newest report
    unregistered: dict[str, float] = field(default_factory=dict)  # instance_uuid -> since
    left: dict[str, str] = field(default_factory=dict)  # instance_uuid -> LEFT_*: who left with the newest report

    def entry(self) -> dict[str, Any]:
        """Return this record as a beat entry (what peers merge)."""
        return {'host': self.host, 'seen_at': self.seen_at, 'report_at': self.report_at,
                'interval_s': self.interval_s, 'version': self.version, 'rpc_api': self.rpc_api,
                'states': dict(self.states),
                'unregistered': dict(self.unregistered), 'left': dict(self.left)}


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def summarize(report: Any, seen_at: float, previous: Optional[AgentRecord]) -> Optional[dict[str, Any]]:
    """Return the beat entry of a state report received at ``seen_at``, None when it names no host.

    Never raises: a malformed report still says its agent is alive, if it names its host.
    """
    if not isinstance(report, dict) or not isinstance(report.get('host'), str) or not report['host']:
        return None
    report_at = _number(report.get('at'))
    if report_at is None:
        report_at = seen_at
    agent: Any = report.get('agent')
    agent = agent if isinstance(agent, dict) else {}
    interval = _number(agent.get('report_interval_s'))
    version = agent.get('version') if isinstance(agent.get('version'), str) else None
    rpc_api = agent.get('rpc_api') if isinstance(agent.get('rpc_api'), str) else None
    states: dict[str, int] = {}
    unregistered: dict[str, float] = {}
    present: set[str] = set()
    instances: Any = report.get('instances')
    for item in instances if isinstance(instances, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get('instance_uuid'), str):
            continue
        uuid = item['instance_uuid']
        present.add(uuid)
        state = item.get('state')
        if isinstance(state, str) and (state in states or len(states) < MAX_STATES):
            states[state] = states.get(state, 0) + 1
        if item.get('registered') is False:
            since = _number(item.get('since'))
            if since is None:
                since = previous.unregistered.get(uuid, report_at) if previous is not None else report_at
            unregistered[uuid] = since
    left: dict[str, str] = {}
    if previous is not None:
        for uuid in previous.unregistered:
            if uuid not in unregistered:
                left[uuid] = LEFT_REGISTERED if uuid in present else LEFT_GONE
    return {'host': report['host'], 'seen_at': seen_at, 'report_at': report_at,
            'interval_s': interval if interval is not None and interval > 0 else None, 'version': version,
            'rpc_api': rpc_api, 'states': states,
            'unregistered': unregistered, 'left': left}


class AgentTable:
    """Every compute agent's newest report, merged from this controller's reports and its peers' beats."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._agents: dict[str, AgentRecord] = {}
        self._delta: dict[str, dict[str, Any]] = {}  # host -> entry learned locally since the last beat

    def observe(self, report: Any, seen_at: float) -> Optional[str]:
        """Record a state report this controller received; return its host (None: no host named)."""
        with self._lock:
            host = report.get('host') if isinstance(report, dict) else None
            entry = summarize(report, seen_at, self._agents.get(host) if isinstance(host, str) else None)
            if entry is None:
                return None
            self._apply(entry)
            record = self._agents[entry['host']]
            self._delta[entry['host']] = record.entry()
            return entry['host']

    def merge(self, entries: Any) -> None:
        """Merge a peer's beat entries (malformed ones are skipped)."""
        if not isinstance(entries, list):
            return
        with self._lock:
            for entry in entries:
                if _valid_entry(entry):
                    self._apply(entry)

    def take_delta(self) -> list[dict[str, Any]]:
        """Return and forget what this controller learned since the last call (its next beat's entries)."""
        with self._lock:
            delta, self._delta = list(self._delta.values()), {}
        return delta

    def requeue(self, entries: list[dict[str, Any]]) -> None:
        """Put back the entries of a beat that could not be sent (unless newer ones replaced them)."""
        with self._lock:
            for entry in entries:
                self._delta.setdefault(entry['host'], entry)

    def full(self) -> list[dict[str, Any]]:
        """Return every record as beat entries (the answer to a restarted peer)."""
        with self._lock:
            return [record.entry() for record in self._agents.values()]

    def get(self, host: str) -> Optional[AgentRecord]:
        """Return a copy of the record of ``host``."""
        with self._lock:
            record = self._agents.get(host)
            if record is None:
                return None
            return AgentRecord(record.host, record.seen_at, record.report_at, record.interval_s, record.version,
                               record.rpc_api, dict(record.states), dict(record.unregistered), dict(record.left))

    def hosts(self) -> list[str]:
        """Return the hosts of every known agent."""
        with self._lock:
            return list(self._agents)

    def left_reason(self, host: str, instance_uuid: str) -> str:
        """Return why an instance left the unregistered list of ``host`` (registered unless known gone)."""
        with self._lock:
            record = self._agents.get(host)
            return record.left.get(instance_uuid, LEFT_REGISTERED) if record is not None else LEFT_GONE

    def _apply(self, entry: dict[str, Any]) -> None:
        host = entry['host']
        record = self._agents.get(host)
        if record is None:
            record = self._agents[host] = AgentRecord(host, entry['seen_at'], entry['report_at'])
            newer = True
        else:
            newer = entry['report_at'] > record.report_at
            record.seen_at = max(record.seen_at, entry['seen_at'])
        if not newer:
            return
        record.report_at = entry['report_at']
        record.interval_s = entry.get('interval_s')
        record.version = entry.get('version')
        # Entries of a peer before API 1.4 of the controllers carry neither.
        record.rpc_api = entry['rpc_api'] if isinstance(entry.get('rpc_api'), str) else None
        states = entry.get('states')
        record.states = ({str(k): int(v) for k, v in list(states.items())[:MAX_STATES] if _number(v) is not None}
                         if isinstance(states, dict) else {})
        unregistered = {uuid: float(since) for uuid, since in entry['unregistered'].items()}
        # Only the latest change is kept (bounded): the leader reads it within a tick of the merge.
        record.left = {uuid: str(entry['left'].get(uuid, LEFT_REGISTERED))
                       for uuid in record.unregistered if uuid not in unregistered}
        record.unregistered = unregistered


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get('host'), str) or not entry['host']:
        return False
    if _number(entry.get('seen_at')) is None or _number(entry.get('report_at')) is None:
        return False
    unregistered, left = entry.get('unregistered'), entry.get('left')
    if not isinstance(unregistered, dict) or not isinstance(left, dict):
        return False
    return all(isinstance(k, str) and _number(v) is not None for k, v in unregistered.items())
