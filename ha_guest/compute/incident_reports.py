"""From monitor events to controller reports and log lines, through flap damping.

The compute agent hands every GuestMonitor event here, on its loop. Faults
and recoveries go through the FlapDamper (flap_damping.py), so a guest whose
health flaps is one incident at the controller (one RPC, one notification,
one Vitrage alarm, one WARNING line) for as long as it flaps: the first
fault is reported at once, a recovery once the guest has been steadily
healthy for the hold-down. While an incident is open here, the agent's state
reports and state file show it, whatever the monitor's own state, so that
neither the controller's reconciliation nor a restart closes it early.

Reports leave through ``send`` (the outbox, outbox.py: each is written to
the state file before the reporter gets it). Each open incident keeps its
first ``detected_at`` and whether a controller acknowledged its fault
(``announced``), for the state file and the state reports: after a restart
an acknowledged incident is not reported again, an unacknowledged one is
re-sent at once with its original ``detected_at``.

Guest text in log lines goes through log_text.clean; every line a guest can
cause is limited per instance (log_text.GuestLogs).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Dict, Optional, Tuple

from ha_guest.compute.flap_damping import DampingPolicy, FlapDamper, Incident
from ha_guest.compute.heartbeat_monitor import MISSED, EventKind, GuestMonitor, GuestState, MonitorEvent
from ha_guest.compute.log_text import GuestLogs, clean

LOG = logging.getLogger(__name__)

FAULT = "report_fault"
RECOVERY = "report_recovery"
EXIT = "report_exit"
#: Reason of the exit reported for an open incident whose channel discovery removed.
REMOVED_REASON = "channel removed: the domain stopped or left this host"

#: What state reports and the state file say about an instance's open fault.
FaultFields = Tuple[Optional[str], Optional[str], str]
#: Where reports go: (method, payload).
Send = Callable[[str, Dict[str, Any]], None]


@dataclasses.dataclass
class OpenIncident:
    """An incident open at the controller, as the state file and the state reports tell it."""

    incident_id: str
    detected_at: Optional[float]  # wall clock of its first detection; None: unknown (a version 1 file)
    announced: bool = False  # a controller acknowledged its fault report
    sent: bool = False  # this process queued its fault report


class IncidentReports:
    """Reports each instance's incidents to the controller, damped (on the loop only)."""

    def __init__(self, host: str, send: Send, policy: DampingPolicy,
                 clock: Callable[[], float], wall: Callable[[float], float]) -> None:
        """``clock`` is the loop's; ``wall`` turns one of its times into wall-clock time."""
        self.host = host
        self.send = send
        self.damper = FlapDamper(policy)
        self.logs = GuestLogs(LOG, clock)
        self._wall = wall
        self.open: Dict[str, OpenIncident] = {}

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
            self.open.pop(uuid, None)
            self.logs.line(uuid, "exit", logging.INFO, "%s: guest ended monitoring: %s", uuid,
                           clean(event.reason) or "no reason given")
            self.send(EXIT, {"instance_uuid": uuid, "host": self.host, "reason": event.reason,
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

    def restored(self, uuid: str, monitor: GuestMonitor, now: float, detected_at: Optional[float] = None,
                 announced: bool = False) -> None:
        """A monitor came back from the state file (or the controller); its open fault is open here too.

        An incident no controller acknowledged may never have reached one (the
        previous process died first): its fault is re-sent now, whatever the
        guest does next, with its original ``detected_at``; the controller
        recognises a duplicate. An acknowledged one is not sent again.
        """
        if monitor.incident_id is None:
            return
        self.damper.restored(uuid, Incident(monitor.incident_id, monitor.fault_kind, monitor.reason), now)
        known = self.open[uuid] = OpenIncident(monitor.incident_id, detected_at, announced)
        if not announced:
            LOG.info("%s: incident %s not acknowledged before the restart; reporting it again", uuid,
                     monitor.incident_id, extra={"instance_uuid": uuid})
            misses = monitor.policy.miss_threshold if monitor.fault_kind == MISSED else 0
            self._send_fault(uuid, known, monitor.fault_kind, monitor.reason, monitor.interval_ms, misses,
                             time.time())

    def removed(self, uuid: str, monitor: GuestMonitor) -> bool:
        """Discovery removed the instance's channel: end its open incident now; True if there was one.

        An exit, not a recovery: the guest did not answer healthy (a recovery
        would tell every sink, and the recovery audit, that it did, at a
        ``recovered_at`` we would have to invent); monitoring of it ended here
        because its domain stopped or left the host, which is what "exited"
        means at the controller. Reported at once rather than left to the
        next state report's reconciliation (up to state_report_interval_s).
        """
        incident_id = self.fault_fields(uuid, monitor)[0]
        self.forget(uuid)
        if incident_id is None:
            return False
        LOG.info("%s: channel removed with incident %s open; reporting the end of its monitoring", uuid,
                 incident_id, extra={"instance_uuid": uuid})
        self.send(EXIT, {"instance_uuid": uuid, "host": self.host, "reason": REMOVED_REASON, "at": time.time()})
        return True

    def announced(self, uuid: str, incident_id: Optional[str]) -> bool:
        """A controller acknowledged the fault of ``incident_id``; True if that changed what we keep."""
        known = self.open.get(uuid)
        if known is None or known.incident_id != incident_id or known.announced:
            return False
        known.announced = True
        return True

    def incident(self, uuid: str, monitor: GuestMonitor) -> Optional[OpenIncident]:
        """The instance's open incident as the controller knows it, with its detection time; None if none."""
        incident_id = self.fault_fields(uuid, monitor)[0]
        known = self.open.get(uuid)
        if incident_id is None or known is None or known.incident_id != incident_id:
            return None
        return known

    def forget(self, uuid: str) -> None:
        """The instance is no longer watched: its held recovery is left to the controller's reconciliation."""
        self.damper.forget(uuid)
        self.logs.forget(uuid)
        self.open.pop(uuid, None)

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
        known = self.open.get(uuid)
        if known is not None and known.incident_id == event.incident_id:
            # The monitor confirms an incident restored after a restart: it was re-sent then, or acknowledged.
            if known.sent or known.announced:
                return
        else:
            known = self.open[uuid] = OpenIncident(event.incident_id or "", self._wall(event.at))
        self.logs.incident(uuid, logging.WARNING, "%s: FAULT %s (incident %s): %s", uuid, event.fault_kind,
                           event.incident_id, clean(event.reason))
        self._send_fault(uuid, known, event.fault_kind, event.reason, event.interval_ms, event.misses,
                         self._wall(event.at))

    def _send_fault(self, uuid: str, known: OpenIncident, kind: Optional[str], reason: str, interval_ms: int,
                    misses: int, now_wall: float) -> None:
        if known.detected_at is None:
            known.detected_at = now_wall  # a version 1 file did not keep it: from now on it stays put
        known.sent = True
        self.send(FAULT, {"instance_uuid": uuid, "host": self.host, "incident_id": known.incident_id,
                          "kind": kind, "reason": reason, "detected_at": known.detected_at,
                          "interval_ms": interval_ms, "misses": misses})

    def _report_recovery(self, uuid: str, incident_id: Optional[str], healthy_since: float) -> None:
        # recovered_at is when the guest became healthy for good, not when the hold-down ended.
        known = self.open.get(uuid)
        if known is not None and known.incident_id == incident_id:
            del self.open[uuid]
        self.logs.incident(uuid, logging.INFO, "%s: recovered (incident %s)", uuid, incident_id)
        self.send(RECOVERY, {"instance_uuid": uuid, "host": self.host, "incident_id": incident_id,
                             "recovered_at": self._wall(healthy_since)})
