"""Directory discovery: ``<instance-uuid>.sock`` files in a folder (tests and the demo).

A socket file is a channel (its name without ``.sock`` is the instance
UUID); a ``<instance-uuid>.suspended`` file next to it says the instance is
paused or migrating, and its removal that it runs again. A
``<instance-uuid>.features`` file says what the instance may use, as JSON
``{"heartbeat": true, "server_group_messaging": false}`` (at most 4096
bytes; a missing key takes its default, heartbeat on and SGM off). Without
that file, or with one that can't be read, the channel is heartbeat-only
(``base.LEGACY_FEATURES``, and a rate-limited warning for a bad file).
When the features it gives change (the file appears, changes or goes), the
channel is reported again with ``channel_added``. Write it atomically
(a hidden temporary name, then rename): names starting with ``.`` are
ignored. The folder is polled every ``[compute] directory_poll_s``
seconds (0.2 by default).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from typing import Dict, Optional, Set, Tuple

from oslo_config import cfg

from ha_guest.compute.discovery import base
from ha_guest.compute.log_gate import LogGate

LOG = logging.getLogger(__name__)

SOCKET_SUFFIX = ".sock"
SUSPENDED_SUFFIX = ".suspended"
FEATURES_SUFFIX = ".features"
#: A features file holds two booleans; anything much bigger is not one.
MAX_FEATURES_BYTES = 4096

#: What identifies one version of a features file without reading it: (mtime_ns, size, inode).
_Version = Tuple[int, int, int]


def read_features(path: str) -> base.Features:
    """Read a features file; raise ValueError (or OSError) when it is not one."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_FEATURES_BYTES + 1)
    if len(data) > MAX_FEATURES_BYTES:
        raise ValueError("larger than %d bytes" % MAX_FEATURES_BYTES)
    document = json.loads(data.decode("utf-8"))  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    legacy = base.LEGACY_FEATURES
    values = {}
    # Other keys are ignored, so a newer writer's file still gives these two.
    for key, default in (("heartbeat", legacy.heartbeat), ("server_group_messaging", legacy.server_group_messaging)):
        value = document.get(key, default)
        if not isinstance(value, bool):
            raise ValueError("%s is %r, not true or false" % (key, value))
        values[key] = value
    return base.Features(**values)


class DirectoryDiscovery(base.DiscoveryDriver):
    """Polls ``[compute] directory_path`` for channel sockets and suspension markers."""

    def __init__(self, conf: cfg.ConfigOpts, listener: base.DiscoveryListener) -> None:
        super().__init__(conf, listener)
        self.path: str = conf.compute.directory_path
        self.interval: float = conf.compute.directory_poll_s
        self._sockets: Dict[str, Tuple[str, int]] = {}  # uuid -> (path, inode)
        self._suspended: Set[str] = set()
        # uuid -> (the features file's version or None, the features reported), for known channels only.
        self._features: Dict[str, Tuple[Optional[_Version], base.Features]] = {}
        self._bad_file_log = LogGate(LOG, time.monotonic)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._warned = False
        self._slowest_poll = 0.0  # seconds the slowest poll so far took

    @property
    def event_latency_s(self) -> float:
        """A change is seen at the next poll: one interval, plus what a poll of the folder takes."""
        return self.interval + self._slowest_poll

    def start(self) -> None:
        """Report what is there now, then poll in a thread."""
        self._stop.clear()
        self.poll()
        self._thread = threading.Thread(target=self._run, name="ha-guest-directory-discovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - keep polling whatever happened
                LOG.exception("directory discovery failed on %s", self.path)

    def _scan(self) -> Tuple[Dict[str, Tuple[str, int]], Set[str], Dict[str, _Version]]:
        sockets: Dict[str, Tuple[str, int]] = {}
        suspended: Set[str] = set()
        features: Dict[str, _Version] = {}
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            if not self._warned:
                LOG.warning("discovery directory %s does not exist (yet)", self.path)
                self._warned = True
            return sockets, suspended, features
        self._warned = False
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if name.endswith(SOCKET_SUFFIX):
                instance = name[: -len(SOCKET_SUFFIX)]
                known = self._sockets.get(instance)
                # readdir gives the inode for free: stat only names that are new or replaced.
                if known is not None and not entry.is_symlink() and entry.inode() == known[1]:
                    sockets[instance] = known
                    continue
                try:
                    info = entry.stat(follow_symlinks=True)
                except OSError:
                    continue  # vanished meanwhile
                if stat.S_ISSOCK(info.st_mode):
                    sockets[instance] = (entry.path, info.st_ino)
            elif name.endswith(SUSPENDED_SUFFIX):
                suspended.add(name[: -len(SUSPENDED_SUFFIX)])
            elif name.endswith(FEATURES_SUFFIX):
                try:
                    info = entry.stat(follow_symlinks=True)
                except OSError:
                    continue  # vanished meanwhile
                features[name[: -len(FEATURES_SUFFIX)]] = (info.st_mtime_ns, info.st_size, info.st_ino)
        return sockets, suspended, features

    def _features_of(self, instance: str, version: Optional[_Version]) -> base.Features:
        """The features a channel has now: its file's, or LEGACY_FEATURES without one (or a bad one)."""
        known = self._features.get(instance)
        if known is not None and known[0] == version:
            return known[1]  # the file has not changed since it was read
        if version is None:
            return base.LEGACY_FEATURES
        path = os.path.join(self.path, instance + FEATURES_SUFFIX)
        try:
            return read_features(path)
        except (OSError, ValueError) as exc:
            self._bad_file_log.log(logging.WARNING, "%s: unusable features file, taking heartbeat only: %s",
                                   path, exc, instance_uuid=instance)
            return base.LEGACY_FEATURES

    def poll(self) -> None:
        """Look at the folder once and report the differences."""
        started = time.monotonic()
        sockets, suspended, feature_files = self._scan()
        self._slowest_poll = max(self._slowest_poll, time.monotonic() - started)
        listener = self.listener
        for instance in sorted(set(self._sockets) - set(sockets)):
            del self._sockets[instance]
            self._features.pop(instance, None)
            self._suspended.discard(instance)
            listener.channel_removed(instance)
        for instance, found in sorted(sockets.items()):
            known = self._sockets.get(instance)
            version = feature_files.get(instance)
            features = self._features_of(instance, version)
            previous = self._features.get(instance)
            self._features[instance] = (version, features)
            if known == found:
                if previous is not None and previous[1] != features:
                    # Same channel, other features (its flavor changed): an update of the channel.
                    listener.channel_added(instance, found[0], suspended=instance in self._suspended,
                                           features=features)
                continue
            # New, or a new socket file under the same name (the emulator or QEMU restarted;
            # if the inode number was reused, the channel simply reconnects to the same path).
            self._sockets[instance] = found
            is_suspended = instance in suspended
            if is_suspended:
                self._suspended.add(instance)
            else:
                self._suspended.discard(instance)
            listener.channel_added(instance, found[0], suspended=is_suspended, features=features)
        for instance in sorted(self._sockets):
            if instance in suspended and instance not in self._suspended:
                self._suspended.add(instance)
                listener.instance_suspended(instance, base.PAUSED)
            elif instance not in suspended and instance in self._suspended:
                self._suspended.discard(instance)
                listener.instance_resumed(instance)
