"""RPC endpoints of ha-guest-controller: the controller API and the peer-sync API."""

from __future__ import annotations

from typing import Any, Optional

import oslo_messaging

from ha_guest.controller import status_view
from ha_guest.controller.handler import FaultHandler
from ha_guest.controller.sgm_router import SgmRouter
from ha_guest.controller.watchers import Watchers
from ha_guest.rpc.controller_api import CONTROLLER_API_VERSION
from ha_guest.rpc.errors import FaultRegistryFull, InvalidPayload
from ha_guest.rpc.sync_api import CONTROLLER_SYNC_API_VERSION

# Errors the caller must see, which the server need not log with a traceback.
_expected = oslo_messaging.expected_exceptions(InvalidPayload, FaultRegistryFull)


class ControllerEndpoint:
    """Serves ha_guest.rpc.ControllerAPI (topic [rpc] controller_topic)."""

    target = oslo_messaging.Target(version=CONTROLLER_API_VERSION)

    def __init__(self, handler: FaultHandler, router: Optional[SgmRouter] = None,
                 watch: Optional[Watchers] = None) -> None:
        """``router`` None: no server group messaging (status answers nack unavailable)."""
        self._handler = handler
        self._router = router
        self._watch = watch

    @_expected
    def report_fault(self, ctxt: dict[str, Any], fault: dict[str, Any]) -> dict[str, bool]:
        """Record a fault; {"duplicate": True} if it was known already."""
        return self._handler.report_fault(fault)

    @_expected
    def report_recovery(self, ctxt: dict[str, Any], recovery: dict[str, Any]) -> None:
        """Clear a recovered incident."""
        self._handler.report_recovery(recovery)

    @_expected
    def report_exit(self, ctxt: dict[str, Any], exit: dict[str, Any]) -> None:  # noqa: A002 - the contract's name
        """Clear the faults of an instance whose guest ended monitoring."""
        self._handler.report_exit(exit)

    @_expected
    def report_state(self, ctxt: dict[str, Any], report: dict[str, Any]) -> None:
        """Reconcile with a compute agent's state report."""
        if self._watch is not None:
            self._watch.report_state(report)  # first: even a report the handler refuses says its agent lives
        self._handler.report_state(report)

    @_expected
    def report_batch(self, ctxt: dict[str, Any], reports: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Apply faults, recoveries and exits in order (API 1.2); one result per report."""
        return {'results': self._handler.report_batch(reports)}

    def list_faults(self, ctxt: dict[str, Any], instance_uuid: Optional[str] = None,
                    host: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the active faults (of one instance, of one compute host (API 1.2) if given)."""
        faults = self._handler.list_faults(instance_uuid)
        if host is None:
            return faults
        return [fault for fault in faults if fault.get('host') == host]

    def list_cleared_faults(self, ctxt: dict[str, Any], instance_uuid: Optional[str] = None,
                            host: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the recently cleared faults, each with "state": "cleared" (API 1.4)."""
        faults = self._handler.registry.list_cleared(instance_uuid)
        return [dict(fault, state='cleared') for fault in faults if host is None or fault.get('host') == host]

    def list_agents(self, ctxt: dict[str, Any], host: Optional[str] = None) -> dict[str, Any]:
        """Return who answers and every compute agent the controllers heard from (API 1.4)."""
        origin = self._watch.origin if self._watch is not None else ''
        agents = status_view.list_agents(self._watch, host) if self._watch is not None else []
        return {'controller': status_view.controller_info(origin), 'agents': agents}

    def list_host_faults(self, ctxt: dict[str, Any], host: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the open host faults: compute agents silent for [controller] agent_down_time_s."""
        return self._watch.list_host_faults(host) if self._watch is not None else []

    def list_unregistered(self, ctxt: dict[str, Any], host: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the instances whose guest has not registered (overdue or not, announced or not)."""
        return self._watch.list_unregistered(host) if self._watch is not None else []

    @_expected
    def sgm_broadcast(self, ctxt: dict[str, Any], broadcasts: list[dict[str, Any]]) -> None:
        """Route a batch of guest broadcasts to the senders' peers (cast)."""
        if self._router is not None:
            self._router.broadcast(broadcasts)

    @_expected
    def sgm_status(self, ctxt: dict[str, Any], instance_uuid: str) -> dict[str, Any]:
        """Return the Nova state of every member of the instance's group, or a nack."""
        if self._router is None:
            return {'nack': 'unavailable', 'detail': 'this controller does not route server group messages'}
        return self._router.status(instance_uuid)


class ControllerSyncEndpoint:
    """Serves ha_guest.rpc.ControllerSyncAPI (fanout on [rpc] controller_sync_topic)."""

    target = oslo_messaging.Target(version=CONTROLLER_SYNC_API_VERSION)

    def __init__(self, handler: FaultHandler, router: Optional[SgmRouter] = None,
                 watch: Optional[Watchers] = None) -> None:
        """``router`` None: no server group messaging (status answers nack unavailable)."""
        self._handler = handler
        self._router = router
        self._watch = watch

    @_expected
    def sync_fault(self, ctxt: dict[str, Any], origin: str, fault: dict[str, Any]) -> None:
        """A peer raised a fault."""
        self._handler.sync_fault(origin, fault)

    def sync_clear(self, ctxt: dict[str, Any], origin: str, instance_uuid: str, incident_id: Optional[str],
                   cleared: dict[str, Any], notify: bool) -> None:
        """A peer cleared a fault (incident_id None: all of the instance's)."""
        self._handler.sync_clear(origin, instance_uuid, incident_id, cleared, notify)

    def sync_request(self, ctxt: dict[str, Any], origin: str) -> None:
        """A peer asks for every active fault (and, from the watchers, everything they know)."""
        self._handler.sync_request(origin)
        if self._watch is not None:
            self._watch.sync_request(origin)

    @_expected
    def sync_faults(self, ctxt: dict[str, Any], origin: str, faults: list[dict[str, Any]]) -> None:
        """A peer's active faults."""
        self._handler.sync_faults(origin, faults)

    @_expected
    def sync_members(self, ctxt: dict[str, Any], origin: str, updates: list[dict[str, Any]]) -> None:
        """What a peer learned from Nova's notifications (server group messaging)."""
        if self._router is not None:
            self._router.sync_members(origin, updates)

    def sync_watch(self, ctxt: dict[str, Any], origin: str, beat: dict[str, Any]) -> None:
        """A peer's watcher beat: agents it heard from, and the open alarms if it leads."""
        if self._watch is not None:
            self._watch.sync_watch(origin, beat)
