"""Names shared by the ha_guest driver and transformer: payload fields, states, event types."""

from __future__ import annotations


class EventType:
    """Notification event types sent by ha_guest's vitrage sink."""

    RAISED = "ha_guest.heartbeat.fault.raised"
    CLEARED = "ha_guest.heartbeat.fault.cleared"


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


class FaultState:
    """The ``state`` of a fault."""

    ACTIVE = "active"
    CLEARED = "cleared"


class FaultKind:
    """The ``kind`` of a fault."""

    MISSED = "missed"
    UNHEALTHY = "unhealthy"


class AlarmField:
    """Fields the driver adds to an event for the transformer (besides Vitrage's own)."""

    NAME = "name"
    SEVERITY = "severity"
    UPDATE_TIMESTAMP = "update_timestamp"


# Alarm names as operators see them in `vitrage alarm list`.
ALARM_NAMES = {
    FaultKind.MISSED: "Guest heartbeat missed",
    FaultKind.UNHEALTHY: "Guest unhealthy",
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
)


def alarm_key(alarm: dict) -> tuple[str, str]:
    """Return what identifies one alarm: its instance and its incident (or kind, when a fault has no incident id)."""
    return alarm[FaultField.INSTANCE_UUID], alarm.get(FaultField.INCIDENT_ID) or alarm[FaultField.KIND]
