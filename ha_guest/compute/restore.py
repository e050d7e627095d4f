"""After a restart: saved (or re-learned) instances, waiting for discovery to report them (on the loop).

A saved instance that discovery reports is watched again from the start
with its open incident, if any (heartbeat_monitor.GuestMonitor.restore). One
that discovery does not report within ``RESTORE_GRACE_S`` is not on this
host any more: its open incident is ended with an exit report at once.

When the state file was lost, the controllers' list of this host's open
faults (relearn.py) is applied the same way; an instance discovery already
reported by then keeps the incident if its guest has not answered the new
session (hung, most likely), and otherwise gets that incident's recovery
reported (it answered, so the incident is over).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional

from ha_guest.compute.discovery.base import Features
from ha_guest.compute.incident_reports import EXIT, RECOVERY, IncidentReports
from ha_guest.compute.instance import Instance
from ha_guest.compute.outbox import Outbox
from ha_guest.compute.scheduler import TickScheduler
from ha_guest.compute.state_records import PERSISTED_VALUES, relearned_record, restored_item, restored_records
from ha_guest.compute.state_store import Record

LOG = logging.getLogger(__name__)

#: Saved instances that discovery has not reported after this long are forgotten.
RESTORE_GRACE_S = 60.0
GONE_REASON = "not on this host any more after a restart of the compute agent"


class Restorer:
    """Saved instances not reported by discovery yet, and how an instance takes its saved record back."""

    def __init__(self, host: str, incidents: IncidentReports, scheduler: TickScheduler, outbox: Outbox,
                 restart_grace_s: float) -> None:
        self.host = host
        self.incidents = incidents
        self.scheduler = scheduler
        self.outbox = outbox
        self.restart_grace_s = restart_grace_s
        self.records: Dict[str, Record] = {}
        self.until = float("inf")

    def begin(self, records: Dict[str, Record], now: float) -> None:
        """Hold these saved records for discovery until ``RESTORE_GRACE_S`` from ``now``."""
        self.records = records
        self.until = now + RESTORE_GRACE_S

    def take(self, uuid: str, instance: Instance, features: Features, now: float) -> None:
        """Discovery reported a saved instance: watch it again with its saved state and incident."""
        record = self.records.pop(uuid, None)
        if record is None:
            return
        if record.get("since") is not None:
            instance.since = record["since"]  # the controller's wait for its registration goes on
        if record["state"] in PERSISTED_VALUES and features.heartbeat:
            self._restore(uuid, instance, record, now)
            LOG.info("%s: watching again after a restart (%s%s)", uuid, instance.monitor.state.value,
                     ", incident %s" % record["incident_id"] if record["incident_id"] else "",
                     extra={"instance_uuid": uuid})

    def saved(self) -> List[Record]:
        """The held records, for the state file (kept while discovery may still report them)."""
        return list(self.records.values())

    def reported(self) -> List[Dict[str, Any]]:
        """The held records of watched instances, for state reports: their open faults stay open meanwhile."""
        return [restored_item(record) for record in restored_records(self.records)]

    def expire(self) -> None:
        """The grace is over: what discovery did not report is not here; end its open incidents now."""
        self.until = 0.0
        for record in restored_records(self.records):
            if record["incident_id"]:
                self._gone(record["instance_uuid"], record["incident_id"])
        if self.records:
            self.records = {}
            self.outbox.changed()

    def relearned(self, faults: Optional[List[Dict[str, Any]]], instances: Dict[str, Instance], now: float) -> None:
        """Apply this host's open faults as the controllers listed them (the state file was lost)."""
        for fault in faults or []:
            record = relearned_record(fault)
            if record is None:
                continue
            uuid = record["instance_uuid"]
            instance = instances.get(uuid)
            if instance is not None:
                self._relearned_watched(uuid, instance, record, now)
            elif now < self.until:
                self.records[uuid] = record
            else:
                self._gone(uuid, record["incident_id"])
        self.outbox.changed()

    def _relearned_watched(self, uuid: str, instance: Instance, record: Record, now: float) -> None:
        monitor = instance.monitor
        known = self.incidents.incident(uuid, monitor)
        if known is not None and known.incident_id == record["incident_id"]:
            return
        if not instance.channel.features.heartbeat:
            return  # not watched: the controller's reconciliation ends it
        if not monitor.registered:
            # The guest has not answered the new session: it goes on under its incident.
            LOG.info("%s: incident %s re-learned from the controllers; watching it again", uuid,
                     record["incident_id"], extra={"instance_uuid": uuid})
            self._restore(uuid, instance, record, now)
            if instance.suspended is not None:
                monitor.suspend(now)
            return
        LOG.info("%s: incident %s re-learned from the controllers is over (the guest answered since)", uuid,
                 record["incident_id"], extra={"instance_uuid": uuid})
        self.outbox.put(RECOVERY, {"instance_uuid": uuid, "host": self.host, "incident_id": record["incident_id"],
                                   "recovered_at": time.time()})

    def _restore(self, uuid: str, instance: Instance, record: Record, now: float) -> None:
        monitor = instance.monitor
        monitor.restore(record["interval_ms"], record["incident_id"], record["fault_kind"], record["reason"] or "",
                        now, self.restart_grace_s)
        instance.registered = True
        self.incidents.restored(uuid, monitor, now, record["detected_at"], record["announced"])
        self.scheduler.schedule(monitor)

    def _gone(self, uuid: str, incident_id: str) -> None:
        LOG.info("%s: not reported by discovery; ending its open incident %s", uuid, incident_id,
                 extra={"instance_uuid": uuid})
        self.outbox.put(EXIT, {"instance_uuid": uuid, "host": self.host, "reason": GONE_REASON, "at": time.time()})
