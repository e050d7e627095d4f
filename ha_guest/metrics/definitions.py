"""Every metric the services export: name, type, labels, meaning and label values (the docs and tests read it).

Names follow the Prometheus conventions: an ``ha_guest_<service>_`` prefix,
base units (seconds, bytes), counters end in ``_total``. No metric has a
per-instance label: every label below takes one of a fixed, documented set
of values, so a host with a thousand guests exports the same series as a
host with one.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, FrozenSet, Mapping, Tuple

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"


@dataclasses.dataclass(frozen=True)
class Metric:
    """One metric family; ``name`` is the full name as scraped (counters with their ``_total``)."""

    name: str
    type: str
    help: str
    #: Label name -> the values it takes (a fixed set: the cardinality).
    labels: Mapping[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def family(self) -> str:
        """The name prometheus_client's families take (a counter's without ``_total``)."""
        return self.name[:-len("_total")] if self.type == COUNTER else self.name

    @property
    def series_names(self) -> Tuple[str, ...]:
        """The sample names this metric shows up as in a scrape (a histogram's three)."""
        if self.type == HISTOGRAM:
            return (self.name + "_bucket", self.name + "_sum", self.name + "_count")
        return (self.name,)


GUEST_STATES = ("unregistered", "healthy", "unhealthy", "failed", "exited", "suspended")
FAULT_KINDS = ("missed", "unhealthy")
SGM_DROP_REASONS = ("not_enabled", "rate_limited", "unavailable", "no_group", "refused", "not_here",
                    "recipient_not_enabled", "not_connected", "backlog", "reordered", "self", "invalid")

C = "ha_guest_compute_"
COMPUTE: Tuple[Metric, ...] = (
    Metric(C + "guests", GAUGE, "Watched instances by heartbeat state.", {"state": GUEST_STATES}),
    Metric(C + "channels_connected", GAUGE, "Instances whose channel socket the agent is connected to now."),
    Metric(C + "challenges_total", COUNTER, "Heartbeat challenges sent."),
    Metric(C + "answers_total", COUNTER, "Answers to the open challenge, by the health the guest reported.",
           {"health": ("healthy", "unhealthy")}),
    Metric(C + "late_answers_total", COUNTER, "Answers that came too late (not to the open challenge)."),
    Metric(C + "misses_total", COUNTER, "Challenges left unanswered until the next one was due."),
    Metric(C + "faults_total", COUNTER, "Faults the heartbeat monitors raised, by kind (before flap damping).",
           {"kind": FAULT_KINDS}),
    Metric(C + "recoveries_total", COUNTER, "Faults the heartbeat monitors saw end, by kind (before flap damping).",
           {"kind": FAULT_KINDS}),
    Metric(C + "exits_total", COUNTER, "Guests that ended monitoring on purpose (exit)."),
    Metric(C + "answer_latency_seconds", HISTOGRAM, "Time from a challenge to its answer."),
    Metric(C + "budget_drops_total", COUNTER, "Reads from a guest dropped unparsed because they exceeded its "
           "budget, by the budget exceeded.", {"reason": ("bytes", "lines")}),
    Metric(C + "budget_dropped_bytes_total", COUNTER, "Bytes of the reads dropped over budget."),
    Metric(C + "protocol_errors_total", COUNTER, "Malformed or invalid frames received from guests."),
    Metric(C + "write_overflows_total", COUNTER, "Connections dropped because a guest did not read what the agent "
           "wrote."),
    Metric(C + "report_queue_depth", GAUGE, "Reports to the controllers queued or being sent."),
    Metric(C + "report_queue_capacity", GAUGE, "Bound of the report queue ([compute] report_queue_size)."),
    Metric(C + "reports_sent_total", COUNTER, "Reports a controller acknowledged (faults, recoveries, exits, "
           "state reports)."),
    Metric(C + "report_failures_total", COUNTER, "Report calls that failed (retried, except state reports)."),
    Metric(C + "reports_dropped_total", COUNTER, "Reports given up, by reason.",
           {"reason": ("event_queue_full", "state_queue_full", "state_superseded", "given_up")}),
    Metric(C + "report_latency_seconds", HISTOGRAM, "Time from a report call to the controller's answer (or its "
           "failure); a batch of reports is one call."),
    Metric(C + "sgm_broadcasts_total", COUNTER, "Server group messaging broadcasts received from guests."),
    Metric(C + "sgm_broadcasts_forwarded_total", COUNTER, "Broadcasts handed to the controllers."),
    Metric(C + "sgm_deliveries_total", COUNTER, "Broadcasts written to recipient guests on this host."),
    Metric(C + "sgm_notifications_total", COUNTER, "Member state notifications written to guests."),
    Metric(C + "sgm_drops_total", COUNTER, "Broadcasts (or deliveries of them) dropped, by reason.",
           {"reason": SGM_DROP_REASONS}),
    Metric(C + "sgm_queue_depth", GAUGE, "Broadcasts and status requests waiting for the sender's threads."),
)

R = "ha_guest_controller_"
CONTROLLER_RECOVERY_OUTCOMES = ("acted", "already_done", "skipped", "failed")
#: The sinks ha_guest ships, and the worker casting to the peer controllers; a third-party sink adds its name.
COUNTED_SINKS: Mapping[str, Tuple[str, ...]] = {
    "sink": ("log", "notifications", "vitrage", "recovery", "masakari", "peer-sync")}
CONTROLLER: Tuple[Metric, ...] = (
    Metric(R + "open_faults", GAUGE, "Faults open in this controller's registry, by kind.", {"kind": FAULT_KINDS}),
    Metric(R + "faults_raised_total", COUNTER, "Faults this controller handed to its sinks, by kind.",
           {"kind": FAULT_KINDS}),
    Metric(R + "faults_cleared_total", COUNTER, "Fault clearances this controller handed to its sinks, by kind.",
           {"kind": FAULT_KINDS}),
    Metric(R + "sink_queue_depth", GAUGE, "Calls waiting in a sink's queues (and the peer-sync worker's).",
           COUNTED_SINKS),
    Metric(R + "sink_failures_total", COUNTER, "Sink calls that raised.", COUNTED_SINKS),
    Metric(R + "sink_drops_total", COUNTER, "Sink calls dropped because the sink's queue was full.", COUNTED_SINKS),
    Metric(R + "recovery_actions_total", COUNTER, "Recovery decisions of the action sinks, by outcome.",
           {"sink": ("recovery", "masakari"), "outcome": CONTROLLER_RECOVERY_OUTCOMES}),
    Metric(R + "sgm_broadcasts_total", COUNTER, "Broadcasts routed, by outcome (delivered, alone, or why not).",
           {"outcome": ("delivered", "alone", "invalid", "no_group", "unavailable", "deliver_cast_failed",
                        "nack_cast_failed")}),
    Metric(R + "sgm_nova_events_total", COUNTER, "Nova instance events of server group members, by outcome.",
           {"outcome": ("notified", "alone", "stale", "no_group", "unavailable", "group_deleted", "sync_failed",
                        "notify_cast_failed")}),
)

ALL: Tuple[Metric, ...] = COMPUTE + CONTROLLER


def by_name(metrics: Tuple[Metric, ...] = ALL) -> Dict[str, Metric]:
    """Return the metrics by name."""
    return {metric.name: metric for metric in metrics}


def series_names(metrics: Tuple[Metric, ...] = ALL) -> FrozenSet[str]:
    """Every sample name the services export (histograms with _bucket, _sum and _count)."""
    return frozenset(name for metric in metrics for name in metric.series_names)
