"""Which sinks were told of which incident: a file that outlives the controller, so a restart tells nobody twice.

Why: a compute agent sends a fault report again when it got no answer. If
the controller handed the fault to its sinks and was killed (-9) before its
answer left, the agent's retry reaches a restarted controller that knows
nothing of the incident, and every sink would hear ``raised`` twice. The
journal remembers, per incident, the sinks that took its ``raised``; a
restarted controller tells only the sinks that did not.

A line is appended after a sink returned from ``fault_raised``, not before:
a kill between the two costs a second ``raised`` to that one sink (the
consumers' key is the incident id), never a lost one. Appends go to the
page cache, which a killed process does not lose; a crash of the whole host
may lose the last lines, with the same effect. The file is read once at
start (bounded in size and lines), then rewritten with what is still kept:
incidents of the last ``retention_s``, at most ``max_incidents``.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from typing import Callable, Optional, TextIO

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

Key = tuple[str, str]

#: A line longer than this is not ours (names are UUIDs and sink names): skipped unparsed.
MAX_LINE_BYTES = 1024
#: The most of the file read at start; an older remainder is dropped (oldest first in the file).
MAX_READ_BYTES = 64 * 1024 * 1024


class AnnounceJournal:
    """Incidents and the sinks told of their ``raised``, kept in memory and appended to a file."""

    def __init__(self, path: str, retention_s: float, max_incidents: int,
                 clock: Callable[[], float] = time.time) -> None:
        if max_incidents < 1 or retention_s <= 0:
            raise ValueError('max_incidents and retention_s must be positive')
        self.path = path
        self.retention_s = retention_s
        self.max_incidents = max_incidents
        self._clock = clock
        self._lock = threading.Lock()
        #: Incident -> (first told at, sinks told), oldest first.
        self._told: collections.OrderedDict[Key, tuple[float, set[str]]] = collections.OrderedDict()
        self._file: Optional[TextIO] = None
        self._lines = 0  # lines in the file, to know when to rewrite it

    def __len__(self) -> int:
        with self._lock:
            return len(self._told)

    def open(self) -> None:
        """Read what earlier runs wrote, rewrite the file with what is kept, and open it for appending.

        Raises OSError when the file can't be written (the caller decides).
        """
        with self._lock:
            self._load()
            self._rewrite()

    def told(self, key: Key) -> frozenset[str]:
        """Return the sinks known to have taken ``key``'s ``raised`` (empty: none, or too long ago)."""
        with self._lock:
            entry = self._told.get(key)
            return frozenset(entry[1]) if entry is not None else frozenset()

    def record(self, key: Key, sink: str) -> None:
        """Note that ``sink`` took the ``raised`` of incident ``key`` (memory, then one line in the file)."""
        now = self._clock()
        with self._lock:
            entry = self._told.get(key)
            if entry is None:
                self._told[key] = (now, {sink})
                self._expire(now)
            elif sink in entry[1]:
                return
            else:
                entry[1].add(sink)
            if self._file is None:
                return
            try:
                self._file.write(json.dumps([key[0], key[1], sink, round(now, 3)], separators=(',', ':')) + '\n')
                self._file.flush()  # to the page cache: a kill -9 right after loses nothing
                self._lines += 1
                if self._lines > 2 * self.max_incidents + 1000:
                    self._rewrite()
            except (OSError, ValueError) as exc:
                LOG.error('announce journal %s: cannot write (%s); a restart of this controller may tell the '
                          'sinks of open incidents again', self.path, exc)
                self._close_file()

    def close(self) -> None:
        """Close the file (what is in memory is dropped with the process anyway)."""
        with self._lock:
            self._close_file()

    # -- internals (the lock held) ----------------------------------------------------------------

    def _load(self) -> None:
        try:
            size = os.path.getsize(self.path)
            with open(self.path, 'rb') as handle:
                if size > MAX_READ_BYTES:
                    handle.seek(size - MAX_READ_BYTES)
                    handle.readline()  # the first line is cut: skip it
                    LOG.warning('announce journal %s: %d bytes, only the last %d read', self.path, size,
                                MAX_READ_BYTES)
                data = handle.read(MAX_READ_BYTES)
        except FileNotFoundError:
            return
        now, bad = self._clock(), 0
        for line in data.split(b'\n'):
            if not line:
                continue
            item = _parse(line)
            if item is None:
                bad += 1  # a torn last line after a crash, or not ours
                continue
            instance, incident, sink, at = item
            if now - at > self.retention_s:
                continue
            entry = self._told.get((instance, incident))
            if entry is None:
                self._told[(instance, incident)] = (at, {sink})
            else:
                entry[1].add(sink)
        self._expire(now)
        if bad:
            LOG.warning('announce journal %s: %d unreadable line(s) skipped', self.path, bad)
        LOG.info('announce journal %s: %d incident(s) of the last %.0f s', self.path, len(self._told),
                 self.retention_s)

    def _expire(self, now: float) -> None:
        told = self._told
        while told and (len(told) > self.max_incidents or now - next(iter(told.values()))[0] > self.retention_s):
            told.popitem(last=False)

    def _rewrite(self) -> None:
        """Write what is kept to a new file and put it in place (rename: never a half-written journal)."""
        self._close_file()
        directory = os.path.dirname(self.path) or '.'
        os.makedirs(directory, exist_ok=True)
        temporary = '%s.%d.tmp' % (self.path, os.getpid())
        lines = 0
        with open(temporary, 'w', encoding='utf-8') as handle:
            for (instance, incident), (at, sinks) in self._told.items():
                for sink in sorted(sinks):
                    handle.write(json.dumps([instance, incident, sink, round(at, 3)], separators=(',', ':')) + '\n')
                    lines += 1
        os.replace(temporary, self.path)
        self._file = open(self.path, 'a', encoding='utf-8')  # noqa: SIM115 - kept open for appends
        self._lines = lines

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def _parse(line: bytes) -> Optional[tuple[str, str, str, float]]:
    """Return (instance, incident, sink, at) of one line, or None if it is not a journal line."""
    if len(line) > MAX_LINE_BYTES:
        return None
    try:
        item = json.loads(line)
    except ValueError:
        return None
    if not (isinstance(item, list) and len(item) == 4 and all(isinstance(v, str) for v in item[:3])
            and isinstance(item[3], (int, float)) and not isinstance(item[3], bool)):
        return None
    return item[0], item[1], item[2], float(item[3])
