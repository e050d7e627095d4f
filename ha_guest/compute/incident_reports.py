"""From monitor events to controller reports and log lines, through flap damping.

The compute agent hands every GuestMonitor event here, on its loop. Faults
and recoveries go through the FlapDamper (flap_damping.py), so a guest whose
health flaps is one incident at the controller (one RPC, one notification,
one Vitrage alarm, one WARNING line) for as long as it flaps: the first
fault is reported at once, a recovery once the guest has been steadily
healthy for the hold-down. While an incident is open here, the agent's state
reports and state file show it, whatever the monitor's own state, so that
neither the controller's reconciliation nor a restart closes it early.

Guest text in log lines goes through log_text.clean; every line a guest can
cause is limited per instance (log_text.GuestLogs).
"""

from __future__ import annotations

import logging
from typing import Callable, Optional, Tuple

from ha_guest.compute.flap_damping import DampingPolicy, FlapDamper, Incident
from ha_guest.compute.heartbeat_monitor import MISSED, EventKind, GuestMonitor, GuestState, MonitorEvent
from ha_guest.compute.log_text import GuestLogs, clean
from ha_guest.compute.reporter import Reporter

LOG = logging.getLogger(__name__)

#: What state reports and the state file say about an instance's open fault.
FaultFields = Tuple[Optional[str], Optional[str], str]


class IncidentReports:
    """Reports each instance's incidents to the controller, damped (on the loop only)."""

    def __init__(self, host: str, reporter: Reporter, policy: DampingPolicy,
                 clock: Callable[[], float], wall: Callable[[float], float]) -> None:
        """``clock`` is the loop's; ``wall`` turns one of its times into wall-clock time."""
        self.host = host
        self.reporter = reporter
        self.damper = FlapDamper(policy)
        self.logs = GuestLogs(LOG, clock)
        self._wall = wall

    def on_event(self, event: MonitorEvent) -> None:
        """Report (or hold) one monitor event and log it."""
        uuid = event.instance_uuid
        if event.kind == EventKind.FAULT:
            self._fault(event)
        elif event.kind == EventKind.RECOVERED:
            closing = self.damper.recovered(uuid, event.incident_id, event.at)
            held = self.damper.held(uuid)
            if closing is not None:
                self._report_recovery(uuid, closing, event.at)
            elif held is not None:
                self.logs.line(uuid, "held", logging.INFO, "%s: healthy again; incident %s is reported recovered "
                               "after %.1f s of steady health", uuid, held.incident_id,
                               self.damper.hold_remaining(uuid, event.at) or 0.0)
        elif event.kind == EventKind.EXITED:
            self.damper.ended(uuid)  # the controller clears every fault of an exited guest
            self.logs.line(uuid, "exit", logging.INFO, "%s: guest ended monitoring: %s", uuid,
                           clean(event.reason) or "no reason given")
            self.reporter.report_exit({"instance_uuid": uuid, "host": self.host, "reason": event.reason,
                                       "at": self._wall(event.at)})
        else:
            self.logs.line(uuid, "registered", logging.DEBUG, "%s: registered, interval %d ms", uuid,
                           event.interval_ms)

    def run_due(self, now: float) -> bool:
        """Report the held recoveries whose hold-down is over; True if there were any."""
        if now < self.damper.next_due:
            return False
        closed = self.damper.due(now)
        for uuid, incident, healthy_since in closed:
            self._report_recovery(uuid, incident.incident_id, healthy_since)
        return bool(closed)

    def restored(self, uuid: str, monitor: GuestMonitor, now: float) -> None:
        """A monitor came back from the state file; its open fault, if any, is open here too."""
        if monitor.incident_id is not None:
            self.damper.restored(uuid, Incident(monitor.incident_id, monitor.fault_kind, monitor.reason), now)

    def forget(self, uuid: str) -> None:
        """The instance is no longer watched: its held recovery is left to the controller's reconciliation."""
        self.damper.forget(uuid)
        self.logs.forget(uuid)

    def fault_fields(self, uuid: str, monitor: GuestMonitor) -> FaultFields:
        """(incident_id, fault_kind, reason) of the instance's open incident as the controller knows it."""
        held = self.damper.held(uuid)
        if held is not None:
            return held.incident_id, held.fault_kind, held.reason
        return monitor.incident_id, monitor.fault_kind, monitor.reason

    def saved_state(self, uuid: str, monitor: GuestMonitor) -> GuestState:
        """The state to keep in the state file: a damped incident's, so a flapping guest rewrites nothing."""
        held = self.damper.held(uuid)
        if held is None:
            return monitor.persistent_state
        return GuestState.FAILED if held.fault_kind == MISSED else GuestState.UNHEALTHY

    def _fault(self, event: MonitorEvent) -> None:
        uuid = event.instance_uuid
        incident = Incident(event.incident_id or "", event.fault_kind, event.reason)
        if not self.damper.fault(uuid, incident, event.at):
            held = self.damper.held(uuid)
            self.logs.line(uuid, "flap", logging.INFO, "%s: flapping: %s again (%s), part of incident %s "
                           "(%d faults folded in)", uuid, event.fault_kind, clean(event.reason),
                           held.incident_id if held is not None else None, self.damper.folded(uuid))
            return
        self.logs.incident(uuid, logging.WARNING, "%s: FAULT %s (incident %s): %s", uuid, event.fault_kind,
                           event.incident_id, clean(event.reason))
        self.reporter.report_fault({
            "instance_uuid": uuid, "host": self.host, "incident_id": event.incident_id,
            "kind": event.fault_kind, "reason": event.reason, "detected_at": self._wall(event.at),
            "interval_ms": event.interval_ms, "misses": event.misses})

    def _report_recovery(self, uuid: str, incident_id: Optional[str], healthy_since: float) -> None:
        # recovered_at is when the guest became healthy for good, not when the hold-down ended.
        self.logs.incident(uuid, logging.INFO, "%s: recovered (incident %s)", uuid, incident_id)
        self.reporter.report_recovery({"instance_uuid": uuid, "host": self.host, "incident_id": incident_id,
                                       "recovered_at": self._wall(healthy_since)})
