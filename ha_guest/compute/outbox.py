"""Durable before reported: the compute agent's reports wait for the state file write that holds them.

On the loop, every fault, recovery and exit goes into the outbox. At the end
of the loop iteration that produced it (``call_soon``: every report of one
tick shares it), the outbox takes one snapshot of the agent's records and
hands it to the state store's writer thread as an *urgent* save; once the
file is written (fsync, rename) the writer hands the reports to the reporter,
in order. So an agent killed at any moment has either not reported an
incident (and, on restart, finds the guest as it was before) or has it in
its file (and keeps its incident id and ``detected_at``). A storm of a
thousand faults in one tick is one write, then one batch for the reporter.

Other changes of the records (registrations, an incident marked announced)
are saved lazily: ``SAVE_DELAY_S`` later, at most one write per ``[compute]
state_file_min_interval_s``, and only if the records changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ha_guest.compute.state_store import Record, StateStore

LOG = logging.getLogger(__name__)

#: Delay that gathers a burst of lazy changes into one state file write.
SAVE_DELAY_S = 0.1

Item = Tuple[str, Dict[str, Any]]


class Outbox:
    """Reports held until the state file holds them; lazy saves of everything else (on the loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, store: StateStore, reporter: Any,
                 records: Callable[[], List[Record]]) -> None:
        """``records`` snapshots what the state file keeps (called on the loop)."""
        self.loop = loop
        self.store = store
        self.reporter = reporter
        self._records = records
        self._items: List[Item] = []
        self._flush_handle: Optional[asyncio.Handle] = None
        self._save_handle: Optional[asyncio.TimerHandle] = None
        self._saved: Optional[List[Record]] = None  # what was last handed to the store
        self.closed = False
        #: Urgent saves and reports released; the slowest hold (put to release), in seconds.
        self.counters: Dict[str, Any] = {"urgent_saves": 0, "released": 0, "max_hold_s": 0.0}

    def put(self, method: str, payload: Dict[str, Any]) -> None:
        """Queue one report (``method``: report_fault, report_recovery or report_exit) behind the next write."""
        self._items.append((method, payload))
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self.flush)

    def changed(self) -> None:
        """Something the file keeps may have changed: save it lazily."""
        if self._save_handle is None and not self.closed:
            self._save_handle = self.loop.call_later(SAVE_DELAY_S, self._save_lazily)

    def flush(self) -> None:
        """Save now and release the queued reports after the write (on the loop)."""
        self._flush_handle = None
        if not self._items:
            return
        items, self._items = self._items, []
        records = self._records()
        self._saved = records
        self.counters["urgent_saves"] += 1
        queued_at = time.monotonic()
        self.store.save(records, release=lambda: self._release(items, queued_at))

    def close(self) -> List[Record]:
        """Stop scheduling saves; hand the queued reports to the store's final write; return the records."""
        self.closed = True
        for handle in (self._flush_handle, self._save_handle):
            if handle is not None:
                handle.cancel()
        self._flush_handle = self._save_handle = None
        records = self._records()
        if self._items:
            items, self._items = self._items, []
            queued_at = time.monotonic()
            self.store.save(records, release=lambda: self._release(items, queued_at))
        return records

    def _save_lazily(self) -> None:
        self._save_handle = None
        records = self._records()
        if records != self._saved:  # a re-init or a damped flap changes nothing worth a write
            self._saved = records
            self.store.save(records)

    def _release(self, items: List[Item], queued_at: float) -> None:
        """Hand the reports to the reporter (the writer thread, after the write)."""
        self.counters["released"] += len(items)
        self.counters["max_hold_s"] = max(self.counters["max_hold_s"], time.monotonic() - queued_at)
        for method, payload in items:
            getattr(self.reporter, method)(payload)
