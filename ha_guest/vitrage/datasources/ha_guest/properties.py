"""Names shared by the ha_guest driver and transformer: payload fields, states, event types."""

from __future__ import annotations


class EventType:
    """Notification event types sent by ha_guest's vitrage sink."""

    RAISED = "ha_guest.heartbeat.fault.raised"
    CLEARED = "ha_guest.heartbeat.fault.cleared"
    # The controllers' watchers: a silent compute agent, a guest that never registered.
    HOST_RAISED = "ha_guest.host.fault.raised"
    HOST_CLEARED = "ha_guest.host.fault.cleared"
    UNREGISTERED_RAISED = "ha_guest.instance.unregistered.raised"
    UNREGISTERED_CLEARED = "ha_guest.instance.unregistered.cleared"


class FaultField:
    """Fields of a fault as the controller reports it (notification payload and list_faults)."""

    INSTANCE_UUID = "instance_uuid"
    HOST = "host"
    INCIDENT_ID = "incident_id"
    KIND = "kind"
    REASON = "reason"
    DETECTED_AT = "detected_at"
    INTERVAL_MS = "interval_ms"
    MISSES = "misses"
    STATE = "state"
    CLEARED_AT = "cleared_at"
    CLEARED_BY = "cleared_by"
    LAST_REPORT_AT = "last_report_at"  # host faults: the agent's last state report
    SINCE = "since"  # unregistered instances: when the compute agent first saw the instance


class FaultState:
    """The ``state`` of a fault."""

    ACTIVE = "active"
    CLEARED = "cleared"


class FaultKind:
    """The ``kind`` of a fault."""

    MISSED = "missed"
    UNHEALTHY = "unhealthy"
    AGENT_SILENT = "agent_silent"  # a host fault: its compute agent sent no state report for too long
    UNREGISTERED = "unregistered"  # the instance's guest never registered


class AlarmField:
    """Fields the driver adds to an event for the transformer (besides Vitrage's own)."""

    NAME = "name"
    SEVERITY = "severity"
    UPDATE_TIMESTAMP = "update_timestamp"
    RESOURCE_TYPE = "resource_type"  # what the alarm is on: nova.instance, or nova.host for a host fault
    RESOURCE_ID = "resource_id"  # the instance uuid or the host name


# Alarm names as operators see them in `vitrage alarm list`.
ALARM_NAMES = {
    FaultKind.MISSED: "Guest heartbeat missed",
    FaultKind.UNHEALTHY: "Guest unhealthy",
    FaultKind.AGENT_SILENT: "Guest monitoring down",
    FaultKind.UNREGISTERED: "Guest never registered",
}
# A kind this version does not know yet (a newer controller) is still a fault.
DEFAULT_ALARM_NAME = "Guest heartbeat fault"

# Payload fields copied into the alarm; anything else in a payload is dropped.
FAULT_FIELDS = (
    FaultField.INSTANCE_UUID,
    FaultField.HOST,
    FaultField.INCIDENT_ID,
    FaultField.KIND,
    FaultField.REASON,
    FaultField.DETECTED_AT,
    FaultField.INTERVAL_MS,
    FaultField.MISSES,
    FaultField.STATE,
    FaultField.CLEARED_AT,
    FaultField.CLEARED_BY,
    FaultField.LAST_REPORT_AT,
    FaultField.SINCE,
)

NOVA_HOST = "nova.host"
NOVA_INSTANCE = "nova.instance"

#: Which of the controller's listings holds an alarm: "faults" (list_faults), "hosts", "unregistered".
SCOPE_FAULTS = "faults"
SCOPE_HOSTS = "hosts"
SCOPE_UNREGISTERED = "unregistered"


def is_host_alarm(alarm: dict) -> bool:
    """Return whether the alarm is on a nova.host (a silent compute agent)."""
    return alarm.get(FaultField.KIND) == FaultKind.AGENT_SILENT


def scope_of(alarm: dict) -> str:
    """Return the controller listing an alarm comes from (what a snapshot may clear)."""
    kind = alarm.get(FaultField.KIND)
    if kind == FaultKind.AGENT_SILENT:
        return SCOPE_HOSTS
    return SCOPE_UNREGISTERED if kind == FaultKind.UNREGISTERED else SCOPE_FAULTS


def alarm_key(alarm: dict) -> tuple[str, str]:
    """Return what identifies one alarm: its instance (its host for a host fault) and its incident (or kind)."""
    resource = alarm[FaultField.HOST] if is_host_alarm(alarm) else alarm[FaultField.INSTANCE_UUID]
    return resource, alarm.get(FaultField.INCIDENT_ID) or alarm[FaultField.KIND]
