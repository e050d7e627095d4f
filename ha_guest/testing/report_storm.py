"""Reporter storm: N faults queued at once at a compute agent's Reporter, until a real controller acknowledged all.

Measures only the reporting path (reporter thread -> RPC -> controller ->
acknowledgement), without guests or detection: the functional tests' batch
check and a building block for benchmarks (give it a ControllerAPI on a
broker where a controller runs).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Dict, List

from ha_guest.compute.reporter import Reporter
from ha_guest.testing.bench_report import percentile


def fault(host: str, detected_at: float) -> Dict[str, Any]:
    """A fresh fault report of a new instance on ``host``."""
    return {"instance_uuid": str(uuid.uuid4()), "host": host, "incident_id": str(uuid.uuid4()), "kind": "missed",
            "reason": "report storm", "detected_at": detected_at, "interval_ms": 100, "misses": 3}


def storm(api: Any, count: int, host: str, timeout: float = 30.0, **reporter_kwargs: Any) -> Dict[str, Any]:
    """Queue ``count`` faults at once on a Reporter over ``api``; return figures once all are acknowledged.

    Figures: total_ms (first queued to last acknowledged), p50_ms / p99_ms of each
    fault's queue-to-acknowledgement time, batches (report_batch calls), sent,
    and the incident ids (``incidents``) for the caller's checks.
    """
    acked: Dict[str, float] = {}
    done = threading.Event()

    def on_sent(method: str, payload: Dict[str, Any], result: Dict[str, Any]) -> None:
        acked[payload["incident_id"]] = time.monotonic()
        if len(acked) >= count:
            done.set()

    reporter = Reporter(api, on_sent=on_sent, **reporter_kwargs)
    reporter.start()
    try:
        faults: List[Dict[str, Any]] = [fault(host, time.time()) for _ in range(count)]
        queued: Dict[str, float] = {}
        start = time.monotonic()
        for item in faults:
            queued[item["incident_id"]] = time.monotonic()
            reporter.report_fault(item)
        if not done.wait(timeout):
            raise AssertionError("%d of %d faults acknowledged within %.0f s" % (len(acked), count, timeout))
        end = max(acked.values())
        latencies = sorted((acked[key] - queued[key]) * 1000.0 for key in queued)
        return {"count": count, "total_ms": round((end - start) * 1000.0, 1),
                "p50_ms": round(percentile(latencies, 0.5) or 0.0, 1),
                "p99_ms": round(percentile(latencies, 0.99) or 0.0, 1),
                "batches": reporter.counters["batches"], "sent": reporter.counters["sent"],
                "incidents": [item["incident_id"] for item in faults]}
    finally:
        reporter.stop(1.0)
