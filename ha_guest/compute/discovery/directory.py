"""Directory discovery: ``<instance-uuid>.sock`` files in a folder (tests and the demo).

A socket file is a channel (its name without ``.sock`` is the instance
UUID); a ``<instance-uuid>.suspended`` file next to it says the instance is
paused or migrating, and its removal that it runs again. The folder is
polled every ``[compute] directory_poll_s`` seconds (0.2 by default).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from typing import Dict, Optional, Set, Tuple

from oslo_config import cfg

from ha_guest.compute.discovery import base

LOG = logging.getLogger(__name__)

SOCKET_SUFFIX = ".sock"
SUSPENDED_SUFFIX = ".suspended"


class DirectoryDiscovery(base.DiscoveryDriver):
    """Polls ``[compute] directory_path`` for channel sockets and suspension markers."""

    def __init__(self, conf: cfg.ConfigOpts, listener: base.DiscoveryListener) -> None:
        super().__init__(conf, listener)
        self.path: str = conf.compute.directory_path
        self.interval: float = conf.compute.directory_poll_s
        self._sockets: Dict[str, Tuple[str, int]] = {}  # uuid -> (path, inode)
        self._suspended: Set[str] = set()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._warned = False

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

    def _scan(self) -> Tuple[Dict[str, Tuple[str, int]], Set[str]]:
        sockets: Dict[str, Tuple[str, int]] = {}
        suspended: Set[str] = set()
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            if not self._warned:
                LOG.warning("discovery directory %s does not exist (yet)", self.path)
                self._warned = True
            return sockets, suspended
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
        return sockets, suspended

    def poll(self) -> None:
        """Look at the folder once and report the differences."""
        sockets, suspended = self._scan()
        listener = self.listener
        for instance in sorted(set(self._sockets) - set(sockets)):
            del self._sockets[instance]
            self._suspended.discard(instance)
            listener.channel_removed(instance)
        for instance, found in sorted(sockets.items()):
            known = self._sockets.get(instance)
            if known == found:
                continue
            # New, or a new socket file under the same name (the emulator or QEMU restarted;
            # if the inode number was reused, the channel simply reconnects to the same path).
            self._sockets[instance] = found
            is_suspended = instance in suspended
            if is_suspended:
                self._suspended.add(instance)
            else:
                self._suspended.discard(instance)
            listener.channel_added(instance, found[0], suspended=is_suspended)
        for instance in sorted(self._sockets):
            if instance in suspended and instance not in self._suspended:
                self._suspended.add(instance)
                listener.instance_suspended(instance, base.PAUSED)
            elif instance not in suspended and instance in self._suspended:
                self._suspended.discard(instance)
                listener.instance_resumed(instance)
