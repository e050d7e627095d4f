"""The compute agent's collector: reads the agent's own counters when Prometheus scrapes.

Nothing here runs on the heartbeat path. A scrape asks the agent's loop for
one snapshot (compute/agent_totals.py: a few milliseconds per thousand
guests) and reads the reporter's and the SGM sender's counters from this
thread; a loop that does not answer within ``timeout_s`` fails the scrape,
which Prometheus shows as a failed scrape of a live target.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable

from ha_guest.metrics import definitions
from ha_guest.metrics.server import Families

C = "ha_guest_compute_"


def _on_loop(manager: Any) -> Dict[str, Any]:
    """What only the loop may read: instances, totals, the SGM relay's counters."""
    snapshot = manager.totals.snapshot(list(manager.instances.values()))
    snapshot["sgm"] = dict(manager.sgm_relay.counters)
    snapshot["sgm_drops"] = dict(manager.sgm_relay.drops)
    return snapshot


class ComputeCollector:
    """A prometheus_client collector over one ComputeManager."""

    def __init__(self, manager: Any, timeout_s: float = 5.0) -> None:
        self.manager = manager
        self.timeout_s = timeout_s

    def describe(self) -> Iterable[Any]:
        """Nothing: registering must not take a snapshot."""
        return []

    def collect(self) -> Iterable[Any]:
        """Return every compute metric family, filled."""
        manager = self.manager
        snap = manager.call(_on_loop, manager, timeout=self.timeout_s)
        out = Families(definitions.COMPUTE)
        for state in definitions.GUEST_STATES:
            out.add(C + "guests", snap["states"].get(state, 0), state=state)
        out.add(C + "channels_connected", snap["connected"])
        counters, events = snap["counters"], snap["events"]
        out.add(C + "challenges_total", counters["challenges"])
        out.add(C + "answers_total", counters["responses"] - counters["unhealthy_responses"], health="healthy")
        out.add(C + "answers_total", counters["unhealthy_responses"], health="unhealthy")
        out.add(C + "late_answers_total", counters["late_responses"])
        out.add(C + "misses_total", counters["misses"])
        for kind in definitions.FAULT_KINDS:
            out.add(C + "faults_total", events.get(("fault", kind), 0), kind=kind)
            out.add(C + "recoveries_total", events.get(("recovered", kind), 0), kind=kind)
        out.add(C + "exits_total", sum(n for (event, _), n in events.items() if event == "exited"))
        if snap["latency"] is not None:
            out.histogram(C + "answer_latency_seconds", snap["latency"])
        out.add(C + "budget_drops_total", counters["rate_limited"] - counters["rate_limited_lines"], reason="bytes")
        out.add(C + "budget_drops_total", counters["rate_limited_lines"], reason="lines")
        out.add(C + "budget_dropped_bytes_total", counters["bytes_dropped"])
        out.add(C + "protocol_errors_total", counters["protocol_errors"])
        out.add(C + "write_overflows_total", counters["overflows"])
        self._reporter(out, manager.reporter)
        sgm = snap["sgm"]
        out.add(C + "sgm_broadcasts_total", sgm.get("broadcasts_received", 0))
        out.add(C + "sgm_broadcasts_forwarded_total", sgm.get("broadcasts_forwarded", 0))
        out.add(C + "sgm_deliveries_total", sgm.get("deliveries", 0))
        out.add(C + "sgm_notifications_total", sgm.get("notifications", 0))
        for reason in definitions.SGM_DROP_REASONS:
            out.add(C + "sgm_drops_total", snap["sgm_drops"].get(reason, 0), reason=reason)
        out.add(C + "sgm_queue_depth", manager.sgm_sender.pending())
        return out.collected()

    @staticmethod
    def _reporter(out: Families, reporter: Any) -> None:
        counters = dict(reporter.counters)  # ints written by the reporter thread: a copy is good enough
        out.add(C + "report_queue_depth", reporter.pending())
        out.add(C + "report_queue_capacity", reporter.queue_size)
        out.add(C + "reports_sent_total", counters["sent"])
        out.add(C + "report_failures_total", counters["attempts_failed"])
        for reason, key in (("event_queue_full", "events_dropped"), ("state_queue_full", "state_dropped"),
                            ("state_superseded", "state_superseded"), ("given_up", "given_up")):
            out.add(C + "reports_dropped_total", counters[key], reason=reason)
        out.histogram(C + "report_latency_seconds", reporter.caller.latency.cumulative())
