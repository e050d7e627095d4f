"""The guest end of the channel: port discovery, non-blocking I/O and reconnects.

The channel is a virtio-serial character device, or (for tests and the
emulator) a UNIX socket that is connected to instead. Either way the agent
reads and writes the raw file descriptor with os.read/os.write from the
event loop's reader/writer callbacks, so an answer to a challenge is written
from the same callback that read the challenge.

A real port with no host behind it reads EOF at once and polls POLLHUP; the
emulator accepts and half-closes. Both end a connection, and Connector opens
the channel again after a backoff of 0.1 s doubling to 2 s (plus up to 10 %
jitter), so a missing host never makes the agent spin or exit. The backoff
resets once the owner marks a connection as good (a host hello arrived).
"""

from __future__ import annotations

import asyncio
import errno
import glob
import logging
import os
import random
import socket
import stat
from typing import Callable, Optional

from ha_guest.protocol.constants import GUEST_SYSFS_PORTS

LOG = logging.getLogger(__name__)

#: Bytes queued for a channel that does not take them before it is dropped.
MAX_WRITE_BUFFER = 65536

READ_SIZE = 65536
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0
BACKOFF_JITTER = 0.1
CONNECT_TIMEOUT_S = 2.0
DEV_DIR = "/dev"
LINK_DIR = "/dev/virtio-ports"


def find_port(name: str, link_dir: str = LINK_DIR, sysfs_dir: str = GUEST_SYSFS_PORTS,
              dev_dir: str = DEV_DIR, make_link: Optional[bool] = None) -> Optional[str]:
    """Return the device path of the virtio-serial port called ``name``, or None.

    Prefers the udev link; without udev it scans sysfs for the name and, when
    running as root (or ``make_link``), creates the link other tools expect.
    """
    link = os.path.join(link_dir, name)
    if os.path.exists(link):
        return link
    for name_file in sorted(glob.glob(os.path.join(sysfs_dir, "*", "name"))):
        try:
            with open(name_file, encoding="utf-8", errors="replace") as handle:
                found = handle.read().strip()
        except OSError:
            continue
        if found != name:
            continue
        device = os.path.join(dev_dir, os.path.basename(os.path.dirname(name_file)))
        if make_link if make_link is not None else os.geteuid() == 0:
            _make_link(link, device)
        return device
    return None


def _make_link(link: str, device: str) -> None:
    try:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(device, os.path.dirname(link)), link)
    except OSError as exc:
        # Only a convenience for other tools; the agent uses the device directly.
        LOG.debug("cannot link %s to %s: %s", link, device, exc)


class ChannelClosed(Exception):
    """The channel is gone; the message says why."""


class Channel:
    """One open channel file descriptor with a bounded, non-blocking write buffer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, path: str, sock: Optional[socket.socket],
                 on_data: Callable[[bytes], None], on_lost: Callable[[str], None]) -> None:
        self.path = path
        self.bytes_in = 0
        self.bytes_out = 0
        self._loop = loop
        self._fd = fd
        self._sock = sock  # Kept so the socket object does not close the fd when collected.
        self._on_data = on_data
        self._on_lost = on_lost
        self._wbuf = bytearray()
        self._writing = False
        self._closed = False
        loop.add_reader(fd, self._readable)

    @property
    def closed(self) -> bool:
        """Whether the channel has been closed."""
        return self._closed

    @property
    def pending(self) -> int:
        """Bytes waiting to be written."""
        return len(self._wbuf)

    def send(self, data: bytes) -> bool:
        """Write now if possible, else queue; return False if the channel is lost."""
        if self._closed:
            return False
        if not self._wbuf:
            # Fast path: most frames go straight out from the caller's callback.
            try:
                sent = os.write(self._fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._lose("write failed: %s" % (exc.strerror or exc))
                return False
            self.bytes_out += sent
            if sent == len(data):
                return True
            data = data[sent:]
        if len(self._wbuf) + len(data) > MAX_WRITE_BUFFER:
            self._lose("write buffer over %d bytes: host not reading" % MAX_WRITE_BUFFER)
            return False
        self._wbuf += data
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._writable)
        return True

    def _writable(self) -> None:
        try:
            sent = os.write(self._fd, self._wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lose("write failed: %s" % (exc.strerror or exc))
            return
        self.bytes_out += sent
        del self._wbuf[:sent]
        if not self._wbuf:
            self._writing = False
            self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lose("read failed: %s" % (exc.strerror or exc))
            return
        if not data:
            self._lose("end of file")
            return
        self.bytes_in += len(data)
        self._on_data(data)

    def _lose(self, reason: str) -> None:
        if not self._closed:
            self.close()
            self._on_lost(reason)

    def close(self) -> None:
        """Stop watching the descriptor and close it; pending bytes are dropped."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
        self._wbuf.clear()
        if self._sock is not None:
            self._sock.close()
        else:
            os.close(self._fd)


async def open_channel(path: str, on_data: Callable[[bytes], None],
                       on_lost: Callable[[str], None]) -> Channel:
    """Open a character device or connect to a UNIX socket, non-blocking; raise OSError."""
    loop = asyncio.get_running_loop()
    mode = os.stat(path).st_mode
    if stat.S_ISSOCK(mode):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, path), CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            sock.close()
            raise OSError(errno.ETIMEDOUT, "connect timed out") from None
        except BaseException:
            sock.close()
            raise
        try:
            return Channel(loop, sock.fileno(), path, sock, on_data, on_lost)
        except BaseException:
            sock.close()
            raise
    # O_NOCTTY: a misconfigured path to a tty must never become our terminal.
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        # Fails with EPERM for files epoll cannot watch (regular files, /dev/null).
        return Channel(loop, fd, path, None, on_data, on_lost)
    except BaseException:
        os.close(fd)
        raise


class Connector:
    """Keep a channel open: resolve, open, wait for loss, back off, repeat."""

    def __init__(self, resolve: Callable[[], Optional[str]], on_open: Callable[[Channel], None],
                 on_data: Callable[[bytes], None], on_lost: Callable[[str], None]) -> None:
        self._resolve = resolve
        self._on_open = on_open
        self._on_data = on_data
        self._on_lost = on_lost
        self.channel: Optional[Channel] = None
        self.opens = 0
        self.backoff = BACKOFF_MIN_S
        self._lost: Optional[asyncio.Event] = None
        self._problem: Optional[str] = None  # last reported failure, to log each kind once
        self._path: Optional[str] = None

    def mark_good(self) -> None:
        """The current connection reached a host: the next reconnect is quick."""
        self.backoff = BACKOFF_MIN_S

    async def run(self) -> None:
        """Reconnect forever; cancel the task to stop."""
        self._lost = asyncio.Event()
        try:
            while True:
                await self._attempt()
                delay = self.backoff * (1.0 + random.uniform(0.0, BACKOFF_JITTER))
                self.backoff = min(BACKOFF_MAX_S, self.backoff * 2)
                await asyncio.sleep(delay)
        finally:
            if self.channel is not None:
                self.channel.close()
                self.channel = None

    async def _attempt(self) -> None:
        assert self._lost is not None
        path = self._resolve()
        if path is None:
            self._report("not_found", "channel port not found; waiting for it to appear")
            return
        if path != self._path:
            LOG.info("using channel %s", path)
            self._path = path
        self._lost.clear()
        try:
            channel = await open_channel(path, self._on_data, self._closed)
        except OSError as exc:
            self._report("open:%s" % exc.errno, "cannot open %s: %s; retrying" % (path, exc.strerror or exc))
            return
        if self._problem is not None:
            LOG.info("channel %s is open", path)
            self._problem = None
        self.opens += 1
        self.channel = channel
        LOG.debug("channel %s open", path)
        self._on_open(channel)
        if not channel.closed:
            await self._lost.wait()
        self.channel = None

    def _closed(self, reason: str) -> None:
        assert self._lost is not None
        self._lost.set()
        self._on_lost(reason)

    def _report(self, kind: str, message: str) -> None:
        # Warn once per kind of failure: a missing host must not flood the log.
        if kind != self._problem:
            LOG.warning("%s", message)
            self._problem = kind
        else:
            LOG.debug("%s", message)
