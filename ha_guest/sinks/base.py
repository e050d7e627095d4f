"""The fault sink interface (entry point namespace ha_guest.fault_sinks) and the shared payload."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, Optional

from oslo_config import cfg

from ha_guest.rpc.payloads import FAULT_KEYS

#: Entry point namespace of the fault sinks; [controller] fault_sinks names them.
NAMESPACE = 'ha_guest.fault_sinks'

#: Event types of the notification sinks (and of the Vitrage datasource's push events).
EVENT_FAULT_RAISED = 'ha_guest.heartbeat.fault.raised'
EVENT_FAULT_CLEARED = 'ha_guest.heartbeat.fault.cleared'
EVENT_TYPES = (EVENT_FAULT_RAISED, EVENT_FAULT_CLEARED)

STATE_ACTIVE = 'active'
STATE_CLEARED = 'cleared'

#: Key the controller adds to the fault handed to fault_raised: how this controller learned of the fault.
RAISED_BY = 'raised_by'
#: A compute agent reported the fault to this controller (report_fault): the one controller that acts on it.
RAISED_BY_REPORT = 'report'
#: Rebuilt from a compute agent's state report (resync): the fault may have been acted on already elsewhere.
RAISED_BY_RESYNC = 'resync'

#: is_active(instance_uuid, incident_id): whether the controller's registry still holds the incident.
IsActive = Callable[[str, str], bool]


class FaultSink(abc.ABC):
    """Told once when a fault is raised and once when it is cleared.

    The controller calls each sink from a thread of its own, one event at a
    time, in the order the registry changed; an exception is logged and the
    next event follows. ``transport`` is the controller's notification
    transport, for sinks that send notifications. Sinks that act on a fault
    some time after it was raised ask ``is_active`` first: the controller
    binds it to its registry once the sink is loaded.
    """

    #: True: the sink may be called from several threads at once (never for the same instance or host):
    #: the controller then spreads its events over [controller] sink_lanes threads.
    concurrent: bool = False

    def __init__(self, conf: cfg.ConfigOpts, transport: Any) -> None:
        self.conf = conf
        self.transport = transport

    @abc.abstractmethod
    def fault_raised(self, fault: dict[str, Any]) -> None:
        """A new fault: the fault payload of the controller RPC API + RAISED_BY (report or resync)."""

    @abc.abstractmethod
    def fault_cleared(self, fault: dict[str, Any], cleared: dict[str, Any]) -> None:
        """A fault ended; ``cleared`` = {"cleared_at": epoch, "cleared_by": "recovered"|"exited"|"resync"}."""

    def watch_event(self, event_type: str, payload: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """A watcher's alarm (ha_guest.host.fault.* or ha_guest.instance.unregistered.*); default: ignored.

        Not faults of guests: sinks that act on guests (recovery) leave them alone.
        """

    def close(self) -> None:  # noqa: B027 - optional hook: most sinks hold nothing
        """Release what the sink holds; no calls follow."""

    def bind_registry(self, is_active: IsActive) -> None:
        """Let the sink ask the controller's registry whether an incident is still open."""
        self._is_active: Optional[IsActive] = is_active

    def is_active(self, instance_uuid: str, incident_id: str) -> bool:
        """Return whether the incident is still open (True when no registry is bound)."""
        # getattr: a sink written before this hook may not call FaultSink.__init__.
        checker = getattr(self, '_is_active', None)
        return True if checker is None else checker(instance_uuid, incident_id)


def event_payload(fault: dict[str, Any], cleared: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Return the notification payload: the fault + state, cleared_at, cleared_by."""
    payload = {key: fault.get(key) for key in FAULT_KEYS}
    payload['state'] = STATE_CLEARED if cleared is not None else STATE_ACTIVE
    payload['cleared_at'] = cleared['cleared_at'] if cleared is not None else None
    payload['cleared_by'] = cleared['cleared_by'] if cleared is not None else None
    return payload


def publisher_id(conf: cfg.ConfigOpts) -> str:
    """Return the publisher_id of the controller's notifications."""
    return 'ha_guest.controller.%s' % conf.host
