"""What ``ha-guest-status host list`` gets from a controller: every compute agent as the watchers know it.

Read-only views for operators (controller API 1.4). Nothing here decides or
announces anything: alive or silent is judged with the leader's own rule
(Watchers.down_time) at the time of the call, and an open host fault is
listed beside it.
"""

from __future__ import annotations

from typing import Any, Optional

from ha_guest.cmd.launcher import version_string
from ha_guest.controller import host_faults as hf
from ha_guest.controller.watchers import Watchers
from ha_guest.rpc.controller_api import CONTROLLER_API_VERSION

ALIVE = 'alive'
SILENT = 'silent'


def controller_info(origin: str) -> dict[str, Any]:
    """Return who answers: this controller's host, package version and RPC API version."""
    return {'host': origin, 'version': version_string(), 'rpc_api': CONTROLLER_API_VERSION}


def list_agents(watch: Watchers, host: Optional[str] = None) -> list[dict[str, Any]]:
    """Return every compute agent the controllers heard from (of ``host`` if given), by host name."""
    now = watch.clock()
    agents = []
    for name in sorted(watch.agents.hosts()):
        if host is not None and name != host:
            continue
        record = watch.agents.get(name)
        if record is None:
            continue
        down_time = watch.down_time(record)
        alarm = watch.alarms.get((hf.SCOPE_HOST, name))
        silent = alarm is not None or now - record.seen_at > down_time
        agents.append({
            'host': name,
            'status': SILENT if silent else ALIVE,
            'last_report_at': record.seen_at,
            'report_taken_at': record.report_at,
            'report_interval_s': record.interval_s,
            'down_time_s': down_time,
            'version': record.version,
            'rpc_api': record.rpc_api,
            'instances': dict(record.states),
            'unregistered': len(record.unregistered),
            'host_fault': alarm['incident_id'] if alarm is not None else None,
        })
    return agents
