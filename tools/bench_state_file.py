"""What making a fault durable before it is reported costs: state file writes and the outbox's hold.

Writes the compute agent's state file (ha_guest.compute.state_store) with N
records the way the agent does (temporary file, fsync, hard link of the
previous generation, rename, fsync of the folder) and measures, per write,
the time from an urgent save to the release of its reports (what a fault
report waits for before the reporter gets it). Prints the figures and writes
them as JSON (``--json``).

    python tools/bench_state_file.py --records 1 100 1000 --writes 50 --dir /var/lib/ha_guest
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from typing import Any, Dict, List

from ha_guest.compute.state_store import StateStore


def _records(count: int) -> List[Dict[str, Any]]:
    return [{"instance_uuid": "%08d-0000-4000-8000-000000000000" % index, "state": "failed", "interval_ms": 100,
             "incident_id": "%032x" % index, "fault_kind": "missed", "reason": "no answer to 1 challenge(s) of 100 ms",
             "detected_at": 1767225600.0 + index, "announced": bool(index % 2), "since": 1767225000.0}
            for index in range(count)]


def measure(folder: str, count: int, writes: int) -> Dict[str, Any]:
    """Hold times (urgent save to release) and write times for ``writes`` saves of ``count`` records."""
    store = StateStore(os.path.join(folder, "compute-state-%d.json" % count), min_interval_s=0.2)
    store.start()
    records = _records(count)
    holds: List[float] = []
    write_times: List[float] = []
    try:
        for _ in range(writes):
            released = threading.Event()
            started = time.monotonic()
            store.save(records, release=released.set)
            released.wait(10.0)
            holds.append(time.monotonic() - started)
            write_times.append(store.last_write_s)
    finally:
        store.stop()
    holds.sort()

    def ms(value: float) -> float:
        return round(value * 1000.0, 3)

    return {"records": count, "writes": writes, "hold_p50_ms": ms(statistics.median(holds)),
            "hold_p99_ms": ms(holds[min(len(holds) - 1, int(len(holds) * 0.99))]), "hold_max_ms": ms(holds[-1]),
            "write_p50_ms": ms(statistics.median(write_times)), "write_max_ms": ms(max(write_times)),
            "bytes": os.path.getsize(store.path)}


def main() -> None:
    """Run the measurement and print/write its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--dir", help="folder to write in (default: a temporary folder under /var/tmp)")
    parser.add_argument("--json", default="bench-state-file.json", help="where to write the figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir or "/var/tmp") as folder:
        figures = [measure(folder, count, args.writes) for count in args.records]
    for figure in figures:
        print("%(records)5d records: fault held %(hold_p50_ms).2f ms p50, %(hold_p99_ms).2f ms p99, "
              "%(hold_max_ms).2f ms max (write %(write_p50_ms).2f ms p50), %(bytes)d bytes" % figure)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump({"state_file": figures}, handle, indent=2)


if __name__ == "__main__":
    main()
