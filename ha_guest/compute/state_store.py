"""The compute agent's state file: registered instances and their open faults.

Written atomically (temporary file, fsync, rename) from a thread of its own
so the event loop never waits for the disk; read once at start. A restarted
agent uses it to watch registered guests from the start, so that a guest
still hung faults again under the same incident id and a healthy one simply
answers.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

LOG = logging.getLogger(__name__)

FORMAT_VERSION = 1
_FIELDS = ("instance_uuid", "state", "interval_ms", "incident_id", "fault_kind", "reason")

Record = Dict[str, Any]


def _valid(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    if not isinstance(record.get("instance_uuid"), str) or not isinstance(record.get("state"), str):
        return False
    interval = record.get("interval_ms")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        return False
    return all(record.get(name) is None or isinstance(record.get(name), str)
               for name in ("incident_id", "fault_kind", "reason"))


class StateStore:
    """Load and save the list of registered instances."""

    def __init__(self, path: str, min_interval_s: float = 0.2) -> None:
        self.path = path
        self.min_interval_s = min_interval_s
        self.saves = 0
        self.failures = 0
        self._pending: Optional[List[Record]] = None
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None

    def load(self) -> Dict[str, Record]:
        """Return the saved records by instance UUID; an unreadable file counts as empty."""
        if not self.path:
            return {}
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            LOG.error("cannot read the state file %s, starting without it: %s", self.path, exc)
            return {}
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION or \
                not isinstance(data.get("instances"), list):
            LOG.error("state file %s has an unknown format, starting without it", self.path)
            return {}
        records = {}
        for record in data["instances"]:
            if _valid(record):
                records[record["instance_uuid"]] = {name: record.get(name) for name in _FIELDS}
            else:
                LOG.warning("ignoring a malformed record in %s: %.200r", self.path, record)
        return records

    def write(self, records: List[Record]) -> None:
        """Write the file now, atomically (raises OSError)."""
        if not self.path:
            return
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        body = json.dumps({"version": FORMAT_VERSION, "saved_at": time.time(), "instances": records},
                          separators=(",", ":"), sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=".compute-state.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself must survive a crash
            finally:
                os.close(dir_fd)
        except OSError:
            pass
        self.saves += 1

    # -- background saving ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="ha-guest-state-store", daemon=True)
        self._thread.start()

    def save(self, records: List[Record]) -> None:
        """Have the writer thread save these records soon; a newer call replaces an unwritten one."""
        with self._cond:
            self._pending = records
            self._cond.notify()

    def stop(self, final: Optional[List[Record]] = None) -> None:
        """Stop the writer; write ``final`` (or what is pending) synchronously first."""
        with self._cond:
            self._stopping = True
            pending, self._pending = self._pending, None
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5.0)
        records = final if final is not None else pending
        if records is not None:
            self._write_logged(records)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                records, self._pending = self._pending, None
            if records is not None:
                self._write_logged(records)
            # Coalesce bursts (a thousand guests registering at once) into few writes.
            with self._cond:
                self._cond.wait_for(lambda: self._stopping, self.min_interval_s)

    def _write_logged(self, records: List[Record]) -> None:
        try:
            self.write(records)
        except OSError as exc:
            self.failures += 1
            LOG.error("cannot write the state file %s: %s", self.path, exc)
