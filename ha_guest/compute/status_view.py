"""What ``ha-guest-status instance list/show`` gets from a compute agent (ComputeAPI 1.2 instance_stats).

Built on the agent's loop from what the loop keeps anyway (monitor state and
counters, channel session): nothing is added to the per-answer hot path but
one timestamp, and nothing is sent unless an operator asks. An answer holds
at most MAX_INSTANCES instances (more than a host runs) so that one reply
stays a bounded RPC message.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, Optional

from ha_guest.compute.instance import Instance

if TYPE_CHECKING:
    from ha_guest.compute.manager import ComputeManager

#: Most instances in one answer (the answer says "truncated" past it).
MAX_INSTANCES = 5000


def instance_view(uuid: str, instance: Instance, miss_threshold: int, loop_now: float, wall_now: float
                  ) -> Dict[str, Any]:
    """Return one instance as the status command shows it (on the loop)."""
    monitor, stats, channel = instance.monitor, instance.monitor.stats, instance.channel
    last_at = stats.last_response_at
    features = channel.features
    return {
        "instance_uuid": uuid,
        "state": monitor.state.value,
        "interval_ms": monitor.interval_ms,
        "miss_threshold": miss_threshold,
        "connected": bool(channel.connected),
        "registered": bool(instance.registered),
        "registered_at": instance.registered_at,
        "watched_since": instance.since,
        "suspended": instance.suspended,
        # Loop (monotonic) time turned into wall time at the moment of the call.
        "last_answer_at": wall_now - (loop_now - last_at) if last_at else None,
        "last_latency_ms": round(stats.last_rtt * 1000.0, 3) if last_at else None,
        "max_latency_ms": round(stats.max_rtt * 1000.0, 3),
        "challenges": stats.challenges,
        "answers": stats.responses,
        "late_answers": stats.late_responses,
        "misses": stats.misses,
        "incident_id": monitor.incident_id,
        "fault_kind": monitor.fault_kind,
        "reason": monitor.reason,
        "guest_agent": channel.agent or None,
        "protocol_version": channel.codec.version if channel.hello_acked else None,
        "capabilities": sorted(name for name, on in (("heartbeat", features.heartbeat),
                                                     ("server_group_messaging", features.server_group_messaging))
                               if on),
    }


def instance_stats(manager: "ComputeManager", instance_uuid: Optional[str] = None) -> Dict[str, Any]:
    """Return this host's watched instances (one if given) and the agent itself (on the loop)."""
    from ha_guest.compute.manager import AGENT_VERSION
    from ha_guest.rpc.compute_api import COMPUTE_API_VERSION

    loop_now, wall_now = manager.loop.time(), time.time()
    threshold = manager.policy.miss_threshold
    if instance_uuid is not None:
        found = manager.instances.get(instance_uuid)
        items = [(instance_uuid, found)] if found is not None else []
    else:
        items = list(manager.instances.items())
    views = [instance_view(uuid, instance, threshold, loop_now, wall_now) for uuid, instance in items[:MAX_INSTANCES]]
    views.sort(key=lambda view: view["instance_uuid"])
    return {"host": manager.host, "at": wall_now, "truncated": len(items) > MAX_INSTANCES,
            "agent": {"version": AGENT_VERSION, "rpc_api": COMPUTE_API_VERSION, "started_at": manager.started_at,
                      "instances": len(manager.instances), "miss_threshold": threshold},
            "instances": views}
