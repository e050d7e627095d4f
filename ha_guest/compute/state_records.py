"""What the compute agent keeps per instance in its state file and says in its state reports.

Both are built on the loop from the watched instances and their open
incidents (incident_reports.py). State report items carry the optional keys
of controller API 1.2's state report:

* ``detected_at``: the open incident's original detection time (wall clock);
* ``announced``: a controller acknowledged the incident's fault report (the
  controller adds an announced incident it lacks silently, and leaves an
  unannounced one to its fault report, which is on its way);
* ``registered``: only for an instance with the heartbeat feature, running,
  with a channel: whether its guest has registered since it was found here;
* ``since``: since when the instance has been running here with its channel
  (discovery found it, or it resumed after a pause or an incoming
  migration), so that the controller's wait for a registration starts when
  the guest could first register.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ha_guest.compute.heartbeat_monitor import MISSED, GuestState
from ha_guest.compute.incident_reports import IncidentReports
from ha_guest.compute.instance import Instance
from ha_guest.compute.state_store import Record

#: States whose instances are watched again after a restart.
PERSISTED = frozenset([GuestState.HEALTHY, GuestState.UNHEALTHY, GuestState.FAILED])
PERSISTED_VALUES = frozenset(state.value for state in PERSISTED)


def instance_record(uuid: str, instance: Instance, incidents: IncidentReports) -> Optional[Record]:
    """The state file record of one watched instance; None if there is nothing worth keeping."""
    monitor = instance.monitor
    state = incidents.saved_state(uuid, monitor)
    if state in PERSISTED:
        incident_id, fault_kind, reason = incidents.fault_fields(uuid, monitor)
        incident = incidents.incident(uuid, monitor)
        return {"instance_uuid": uuid, "state": state.value, "interval_ms": monitor.interval_ms,
                "incident_id": incident_id, "fault_kind": fault_kind, "reason": reason,
                "detected_at": incident.detected_at if incident is not None else None,
                "announced": incident.announced if incident is not None else False, "since": instance.since}
    if instance.since is not None and waits_for_registration(instance):
        # Kept only for its ``since``: a restart must not restart the controller's wait for its registration.
        return {"instance_uuid": uuid, "state": GuestState.UNREGISTERED.value, "interval_ms": 0,
                "incident_id": None, "fault_kind": None, "reason": None, "detected_at": None,
                "announced": False, "since": instance.since}
    return None


def waits_for_registration(instance: Instance) -> bool:
    """Whether the instance has the heartbeat feature, runs, and its guest has not registered here yet."""
    return instance.channel.features.heartbeat and instance.suspended is None and not instance.registered


def report_item(uuid: str, instance: Instance, incidents: IncidentReports) -> Dict[str, Any]:
    """One instance of a state report."""
    monitor = instance.monitor
    incident_id, fault_kind, reason = incidents.fault_fields(uuid, monitor)  # a damped one stays open
    item: Dict[str, Any] = {
        "instance_uuid": uuid, "state": monitor.state.value, "interval_ms": monitor.interval_ms,
        "incident_id": incident_id, "fault_kind": fault_kind, "reason": reason,
        "connected": instance.channel.connected}
    incident = incidents.incident(uuid, monitor)
    if incident is not None:
        if incident.detected_at is not None:
            item["detected_at"] = incident.detected_at
        item["announced"] = incident.announced
    if instance.channel.features.heartbeat and instance.suspended is None:
        item["registered"] = instance.registered
    if instance.since is not None:
        item["since"] = instance.since
    return item


def restored_item(record: Record) -> Dict[str, Any]:
    """A state report item for a saved instance discovery has not reported (yet): its open fault stays open."""
    item = {name: value for name, value in record.items() if value is not None}
    if not record.get("incident_id"):
        item.pop("announced", None)
    item["connected"] = False
    return item


def restored_records(records: Dict[str, Record]) -> List[Record]:
    """The saved records still worth keeping and reporting: watched instances (not mere ``since`` records)."""
    return [record for record in records.values() if record["state"] in PERSISTED_VALUES]


def relearned_record(fault: Dict[str, Any]) -> Optional[Record]:
    """A record from one of this host's faults the controller listed (the state file was lost)."""
    uuid, incident_id, kind = fault.get("instance_uuid"), fault.get("incident_id"), fault.get("kind")
    if not isinstance(uuid, str) or not isinstance(incident_id, str) or not isinstance(kind, str):
        return None
    detected_at = fault.get("detected_at")
    interval = fault.get("interval_ms")
    return {"instance_uuid": uuid, "state": (GuestState.FAILED if kind == MISSED else GuestState.UNHEALTHY).value,
            "interval_ms": interval if isinstance(interval, int) and not isinstance(interval, bool) else 0,
            "incident_id": incident_id, "fault_kind": kind, "reason": str(fault.get("reason") or ""),
            "detected_at": float(detected_at) if isinstance(detected_at, (int, float)) else None,
            "announced": True,  # the controller has it: it was announced
            "since": None}
