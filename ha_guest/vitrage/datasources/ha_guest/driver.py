"""Vitrage driver of the ha_guest datasource: faults pushed by the vitrage sink, snapshots from the controller.

Guest faults are alarms on their nova.instance; the controllers' watchers add
host faults (a silent compute agent: an alarm on the nova.host) and, opt-in,
instances whose guest never registered (an alarm on the nova.instance).
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import threading
import time
from typing import Any, Optional

from oslo_config import cfg
from oslo_log import log
from oslo_utils import uuidutils
from vitrage.common.constants import DatasourceAction, GraphAction
from vitrage.common.constants import DatasourceProperties as DSProps
from vitrage.datasources.alarm_driver_base import AlarmDriverBase
from vitrage.utils.datetime import TIMESTAMP_FORMAT

from ha_guest.vitrage.datasources.ha_guest import HA_GUEST_DATASOURCE
from ha_guest.vitrage.datasources.ha_guest import properties as props
from ha_guest.vitrage.datasources.ha_guest.properties import AlarmField, FaultField, FaultState

CONF = cfg.CONF
LOG = log.getLogger(__name__)

Alarm = dict[str, Any]

# Text fields end up in Vitrage's database and UI: keep a chatty guest's reason bounded.
_MAX_TEXT = 1024
_MAX_KIND = 64
# A host name as Nova keeps it (nova.host's id) is at most 255 characters.
_MAX_HOST = 255
_STATE_BY_EVENT_TYPE = {
    props.EventType.RAISED: FaultState.ACTIVE,
    props.EventType.CLEARED: FaultState.CLEARED,
    props.EventType.HOST_RAISED: FaultState.ACTIVE,
    props.EventType.HOST_CLEARED: FaultState.CLEARED,
    props.EventType.UNREGISTERED_RAISED: FaultState.ACTIVE,
    props.EventType.UNREGISTERED_CLEARED: FaultState.CLEARED,
}
#: The controller's listings of the watchers' alarms (ControllerAPI 1.3), by scope.
_WATCH_LISTINGS = ((props.SCOPE_HOSTS, "list_host_faults"), (props.SCOPE_UNREGISTERED, "list_unregistered"))
_WATCH_VERSION = "1.3"


def _timestamp(value: object) -> Optional[float]:
    """Return an epoch time from a payload field, None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _format_timestamp(epoch: float) -> str:
    """Return ``epoch`` in Vitrage's timestamp format (UTC; Vitrage's own helper uses local time)."""
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime(TIMESTAMP_FORMAT)


def _copy_fields(payload: dict) -> Alarm:
    """Copy the known fault fields of ``payload`` that have a sane type; drop everything else."""
    alarm: Alarm = {}
    for name in props.FAULT_FIELDS:
        value = payload.get(name)
        if isinstance(value, str):
            alarm[name] = value[:_MAX_TEXT]
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            alarm[name] = value
    return alarm


def shape_fault(payload: object, state: str) -> Optional[Alarm]:
    """Return the alarm event for a fault payload in ``state``, or None when the payload is no fault."""
    if not isinstance(payload, dict):
        return None
    kind = payload.get(FaultField.KIND)
    if not isinstance(kind, str) or not kind.strip() or len(kind) > _MAX_KIND:
        return None
    if kind == props.FaultKind.AGENT_SILENT:
        host = payload.get(FaultField.HOST)
        if not isinstance(host, str) or not host.strip() or len(host) > _MAX_HOST:
            return None
        resource_type, resource_id = props.NOVA_HOST, host
    else:
        instance_uuid = payload.get(FaultField.INSTANCE_UUID)
        if not isinstance(instance_uuid, str) or not uuidutils.is_uuid_like(instance_uuid):
            return None
        resource_type, resource_id = props.NOVA_INSTANCE, instance_uuid
    incident_id = payload.get(FaultField.INCIDENT_ID)
    if incident_id is not None and not (isinstance(incident_id, str) and incident_id):
        return None

    alarm = _copy_fields(payload)
    alarm[FaultField.STATE] = state
    alarm[AlarmField.RESOURCE_TYPE] = resource_type
    alarm[AlarmField.RESOURCE_ID] = resource_id
    alarm[AlarmField.NAME] = props.ALARM_NAMES.get(kind, props.DEFAULT_ALARM_NAME)
    # The values file (datasources_values/ha_guest.yaml) maps the kind to Vitrage's severity.
    alarm[AlarmField.SEVERITY] = kind.upper()
    detected_at = _timestamp(payload.get(FaultField.DETECTED_AT))
    cleared_at = _timestamp(payload.get(FaultField.CLEARED_AT))
    when = cleared_at if state == FaultState.CLEARED and cleared_at is not None else detected_at
    alarm[AlarmField.UPDATE_TIMESTAMP] = _format_timestamp(when if when is not None else time.time())
    if state == FaultState.CLEARED:
        # Deleting is what a clear means to Vitrage, whatever the datasource action (even an init snapshot).
        alarm[DSProps.EVENT_TYPE] = GraphAction.DELETE_ENTITY
    return alarm


class HAGuestDriver(AlarmDriverBase):
    """Turns ha_guest faults into Vitrage alarm events (push) and resyncs them from the controller (get_all)."""

    def __init__(self) -> None:
        super().__init__()
        # enrich_event runs in the notification listener's thread, get_all in the scheduler's.
        self._lock = threading.Lock()
        self._client: Any = None

    def _vitrage_type(self) -> str:
        return HA_GUEST_DATASOURCE

    def _alarm_key(self, alarm: Alarm) -> tuple[str, str]:
        return props.alarm_key(alarm)

    def _is_erroneous(self, alarm: Optional[Alarm]) -> bool:
        return bool(alarm) and alarm.get(FaultField.STATE) == FaultState.ACTIVE  # type: ignore[union-attr]

    def _is_valid(self, alarm: Optional[Alarm]) -> bool:
        return alarm is not None

    def _status_changed(self, new_alarm: Alarm, old_alarm: Optional[Alarm]) -> bool:
        return (old_alarm or {}).get(FaultField.STATE) != new_alarm.get(FaultField.STATE)

    @staticmethod
    def get_event_types() -> list[str]:
        return list(_STATE_BY_EVENT_TYPE)

    @staticmethod
    def should_delete_outdated_entities() -> bool:
        # Not Vitrage's age-based cleanup: while the controller is unreachable an active
        # fault must stay an alarm. get_all clears what the controller no longer reports.
        return False

    def enrich_event(self, event: object, event_type: str) -> Optional[Alarm]:
        """Return the alarm event for a pushed fault notification, None for anything else."""
        state = _STATE_BY_EVENT_TYPE.get(event_type)
        alarm = shape_fault(event, state) if state else None
        if alarm is None:
            LOG.warning("ha_guest: ignoring a %s notification that is not a fault: %.300r", event_type, event)
            return None
        with self._lock:
            key = props.alarm_key(alarm)
            if state == FaultState.ACTIVE:
                self.cache[key] = (copy.deepcopy(alarm), time.monotonic())
            else:
                self.cache.pop(key, None)
        LOG.debug("ha_guest: %s alarm %s on %s", state, key[1], key[0])
        return self.make_pickleable([alarm], HA_GUEST_DATASOURCE, DatasourceAction.UPDATE)[0]

    def get_all(self, datasource_action: str) -> list[Alarm]:
        """Return the controller's active faults, plus clears for alarms it no longer reports."""
        asked_at = time.monotonic()
        try:
            faults = self._list_faults()
        except Exception as exc:  # any failure: keep vitrage-graph and the current alarms as they are
            LOG.warning(
                "ha_guest: no snapshot, the controller did not list its faults (%s: %s)",
                type(exc).__name__,
                exc,
            )
            return self.make_pickleable([], HA_GUEST_DATASOURCE, datasource_action)
        listed = {props.SCOPE_FAULTS}
        for scope, method in _WATCH_LISTINGS:
            try:
                faults += self._list_watch(method)
                listed.add(scope)
            except Exception as exc:  # an older controller (< 1.3) or a failure: keep those alarms as they are
                LOG.info("ha_guest: the controller did not answer %s (%s: %s)", method, type(exc).__name__, exc)
        alarms = []
        for fault in faults:
            state = fault.get(FaultField.STATE, FaultState.ACTIVE) if isinstance(fault, dict) else None
            if state == FaultState.CLEARED:
                continue
            alarm = shape_fault(fault, FaultState.ACTIVE) if state == FaultState.ACTIVE else None
            if alarm is None:
                LOG.warning("ha_guest: ignoring a listed fault that is not one: %.300r", fault)
                continue
            alarms.append(alarm)
        events = self._resync(alarms, asked_at, listed)
        LOG.info("ha_guest: snapshot of %d active faults, %d cleared by resync", len(alarms), len(events) - len(alarms))
        return self.make_pickleable(events, HA_GUEST_DATASOURCE, datasource_action)

    def get_changes(self, datasource_action: str) -> list[Alarm]:
        # Push datasource: changes arrive as notifications, never by polling.
        return self.make_pickleable([], HA_GUEST_DATASOURCE, datasource_action)

    def _resync(self, alarms: list[Alarm], asked_at: float, scopes: set[str]) -> list[Alarm]:
        """Cache the listed alarms; return them plus a clear for each older cached alarm of ``scopes`` not listed."""
        events = list(alarms)
        now = time.monotonic()
        with self._lock:
            listed = set()
            for alarm in alarms:
                key = props.alarm_key(alarm)
                listed.add(key)
                self.cache[key] = (copy.deepcopy(alarm), now)
            for key, (cached, cached_at) in list(self.cache.items()):
                # A fault pushed while the controller was answering is newer than its answer.
                if key in listed or cached_at >= asked_at or props.scope_of(cached) not in scopes:
                    continue
                del self.cache[key]
                cleared = dict(cached, **{FaultField.CLEARED_BY: "resync", FaultField.CLEARED_AT: time.time()})
                event = shape_fault(cleared, FaultState.CLEARED)
                if event is not None:  # always: the cached alarm was shaped already
                    events.append(event)
        return events

    def _list_faults(self) -> list:
        """Ask a controller for its current faults (a bounded RPC call)."""
        faults = self._controller_client().call({}, "list_faults", instance_uuid=None)
        if not isinstance(faults, list):
            raise TypeError("list_faults returned %s, not a list" % type(faults).__name__)
        return faults

    def _list_watch(self, method: str) -> list:
        """Return the watchers' open alarms from one 1.3 listing (unregistered instances: the announced ones)."""
        answer = self._controller_client().prepare(version=_WATCH_VERSION).call({}, method, host=None)
        if not isinstance(answer, list):
            raise TypeError("%s returned %s, not a list" % (method, type(answer).__name__))
        if method == "list_unregistered":
            announced = [item.get("alarm") for item in answer if isinstance(item, dict)]
            answer = [alarm for alarm in announced if isinstance(alarm, dict)]
        return answer

    def _controller_client(self) -> Any:
        """Return the RPC client of the controllers, built on Vitrage's configuration and transport."""
        if self._client is None:
            # Imported here: vitrage-graph imports the driver before its messaging is set up.
            import oslo_messaging
            from vitrage import messaging

            group = CONF[HA_GUEST_DATASOURCE]
            transport = messaging.get_rpc_transport(group.controller_transport_url)
            target = oslo_messaging.Target(
                topic=group.controller_topic, exchange=group.controller_exchange, version="1.0"
            )
            # retry=1: never block a snapshot for ever on a broker that is down.
            self._client = oslo_messaging.get_rpc_client(
                transport, target, timeout=group.controller_call_timeout, retry=1
            )
        return self._client
