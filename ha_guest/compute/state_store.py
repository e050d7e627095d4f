"""The compute agent's state file: watched instances and their open incidents.

Written atomically (temporary file, fsync, rename, fsync of the folder) from
a thread of its own so the event loop never waits for the disk; read once at
start. A restarted agent uses it to watch registered guests from the start,
so that a guest still hung keeps its incident (same id, same ``detected_at``)
and a healthy one simply answers.

Two kinds of save:

* a *lazy* save (no report waits for it) is coalesced: at most one write per
  ``min_interval_s``, the newest records win;
* an *urgent* save carries ``release`` callbacks, the reports of new
  incidents, recoveries and exits (outbox.py): it is written at once, and
  the callbacks run right after the write, so a report never reaches the
  controller before the file holds what it says (a kill -9 at any moment
  cannot make the agent forget an incident it reported). Everything that
  arrives while a write is under way rides the next one: a storm of faults
  costs a few writes, not one per fault.

Generations: before each write the current file (when it was good) becomes
``<path>.prev``, by a hard link renamed over the old one, so at every moment
both names hold a complete file. A file that cannot be read falls back to
the previous generation; when neither can be read, ``load`` says so and the
agent asks the controller (relearn.py).

Format version 2 adds to each record the open incident's ``detected_at``
(wall clock) and ``announced`` (a controller acknowledged its fault report),
and ``since``; unregistered instances are kept too (for ``since``). Version 1
files are read as well.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional

LOG = logging.getLogger(__name__)

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
PREV_SUFFIX = ".prev"
_TEXT_FIELDS = ("incident_id", "fault_kind", "reason")
FIELDS = ("instance_uuid", "state", "interval_ms") + _TEXT_FIELDS + ("detected_at", "announced", "since")

#: Where ``load`` found the records.
FROM_FILE = "file"
FROM_PREV = "prev"
NO_FILE = "none"  # neither file exists: a first start
UNREADABLE = "unreadable"  # a file exists but neither generation can be read: ask the controller

Record = Dict[str, Any]
Release = Callable[[], None]


@dataclasses.dataclass
class Loaded:
    """What ``StateStore.load`` found."""

    records: Dict[str, Record]
    source: str


def _number_or_none(value: Any) -> bool:
    return value is None or (not isinstance(value, bool) and isinstance(value, (int, float)))


def _valid(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    if not isinstance(record.get("instance_uuid"), str) or not isinstance(record.get("state"), str):
        return False
    interval = record.get("interval_ms")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 0:
        return False
    if not all(record.get(name) is None or isinstance(record.get(name), str) for name in _TEXT_FIELDS):
        return False
    return _number_or_none(record.get("detected_at")) and _number_or_none(record.get("since")) and \
        isinstance(record.get("announced", False), bool)


def normalised(record: Record) -> Record:
    """A record with exactly FIELDS (a version 1 record: no detected_at or since, not announced)."""
    return {"instance_uuid": record["instance_uuid"], "state": record["state"],
            "interval_ms": record["interval_ms"], "incident_id": record.get("incident_id"),
            "fault_kind": record.get("fault_kind"), "reason": record.get("reason"),
            "detected_at": record.get("detected_at"), "announced": bool(record.get("announced", False)),
            "since": record.get("since")}


class StateStore:
    """Load and save the watched instances and their open incidents."""

    def __init__(self, path: str, min_interval_s: float = 0.2) -> None:
        self.path = path
        self.prev_path = path + PREV_SUFFIX if path else ""
        self.min_interval_s = min_interval_s
        self.saves = 0
        self.failures = 0
        #: Seconds the last write and the slowest write took (serialising, fsync, rename).
        self.last_write_s = 0.0
        self.max_write_s = 0.0
        self._pending: Optional[List[Record]] = None
        self._releases: List[Release] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        # Whether the file under ``path`` is one we may keep as the previous generation
        # (None: not known yet): a corrupt file must never replace a good .prev.
        self._current_good: Optional[bool] = None

    # -- reading -------------------------------------------------------------------------------

    def load(self) -> Loaded:
        """Return the saved records by instance UUID and where they came from."""
        if not self.path:
            return Loaded({}, NO_FILE)
        current = self._read(self.path)
        self._current_good = isinstance(current, dict)
        if isinstance(current, dict):
            return Loaded(current, FROM_FILE)
        previous = self._read(self.prev_path)
        if isinstance(previous, dict):
            if current is not None:
                LOG.warning("state file %s unreadable; using the previous generation %s", self.path, self.prev_path)
            return Loaded(previous, FROM_PREV)
        if current is None and previous is None:
            return Loaded({}, NO_FILE)
        LOG.error("neither the state file %s nor %s can be read", self.path, self.prev_path)
        return Loaded({}, UNREADABLE)

    def _read(self, path: str) -> Any:
        """The records of one file; None if it does not exist; False if it cannot be read."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            LOG.error("cannot read the state file %s: %s", path, exc)
            return False
        if not isinstance(data, dict) or data.get("version") not in READABLE_VERSIONS or \
                not isinstance(data.get("instances"), list):
            LOG.error("state file %s has an unknown format", path)
            return False
        records = {}
        for record in data["instances"]:
            if _valid(record):
                records[record["instance_uuid"]] = normalised(record)
            else:
                LOG.warning("ignoring a malformed record in %s: %.200r", path, record)
        return records

    # -- writing -------------------------------------------------------------------------------

    def write(self, records: List[Record]) -> None:
        """Write the file now, atomically, keeping the previous generation (raises OSError)."""
        if not self.path:
            return
        started = time.monotonic()
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
            if self._current_good is None:
                self._current_good = isinstance(self._read(self.path), dict)
            if self._current_good:
                self._keep_previous(folder)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._current_good = True
        try:
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the renames themselves must survive a crash
            finally:
                os.close(dir_fd)
        except OSError:
            pass
        self.saves += 1
        self.last_write_s = time.monotonic() - started
        self.max_write_s = max(self.max_write_s, self.last_write_s)

    def _keep_previous(self, folder: str) -> None:
        """Make the current file the previous generation (a link renamed over .prev: never a gap)."""
        link = os.path.join(folder, ".compute-state-prev.%d" % os.getpid())
        try:
            try:
                os.unlink(link)
            except FileNotFoundError:
                pass
            os.link(self.path, link)
            os.replace(link, self.prev_path)
        except FileNotFoundError:
            pass  # no current file (removed by hand): nothing to keep
        except OSError as exc:
            LOG.warning("cannot keep the previous state file generation %s: %s", self.prev_path, exc)

    # -- background saving ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="ha-guest-state-store", daemon=True)
        self._thread.start()

    def save(self, records: List[Record], release: Optional[Release] = None) -> None:
        """Have the writer save these records (a newer call replaces an unwritten one).

        With ``release`` the save is urgent: written at once, then ``release``
        is called from the writer thread (after every earlier release).
        """
        if release is not None and not self.path:
            release()  # nothing to make durable
            return
        with self._cond:
            if self._stopping:
                self._pending = None
                late = True
            else:
                self._pending = records
                if release is not None:
                    self._releases.append(release)
                late = False
                self._cond.notify()
        if late:  # after stop(): write here rather than lose the report
            self._write_logged(records)
            if release is not None:
                self._release([release])

    def stop(self, final: Optional[List[Record]] = None) -> None:
        """Stop the writer; write ``final`` (or what is pending) synchronously, then release what waits."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5.0)
        with self._cond:
            pending, self._pending = self._pending, None
            releases, self._releases = self._releases, []
        records = final if final is not None else pending
        if records is not None:
            self._write_logged(records)
        self._release(releases)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                records, self._pending = self._pending, None
                releases, self._releases = self._releases, []
            if records is not None:
                self._write_logged(records)
            self._release(releases)
            # Coalesce bursts of lazy saves (a thousand guests registering at once) into few
            # writes; an urgent save (a report waits for it) ends the wait.
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or bool(self._releases), self.min_interval_s)

    def _write_logged(self, records: List[Record]) -> None:
        try:
            self.write(records)
        except OSError as exc:
            self.failures += 1
            LOG.error("cannot write the state file %s: %s", self.path, exc)

    @staticmethod
    def _release(releases: List[Release]) -> None:
        # Also after a failed write: a report is better late on disk than never sent.
        for release in releases:
            try:
                release()
            except Exception:  # noqa: BLE001 - the writer must go on
                LOG.exception("releasing reports after a state file write failed")
