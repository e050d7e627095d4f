"""One emulated virtio-serial port: QEMU's host socket, a guest socket and bounded queues."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import select
import socket

from ha_guest.emulator import socket_file

LOG = logging.getLogger(__name__)

# Behaviour, following QEMU 7.2 and the guest's virtio_console driver:
# - host side: one client at a time; others wait in the listen backlog (QEMU
#   stops accepting while connected); EOF from the host is a disconnect.
# - guest side: a second connection while one is open is closed at once (the
#   device answers EBUSY); one whose predecessor already hung up waits until
#   the predecessor's last bytes are through, so close-and-reopen never fails.
# - no host: a guest connection gets queued bytes, then EOF (shutdown SHUT_WR),
#   and its writes are still taken; a host leaving does the same to the guest.
#   A UNIX socket cannot un-shut, so the guest must reconnect (the device fd
#   would simply work again).
# - each direction queues at most queue_limit bytes, then stops reading.

DEFAULT_QUEUE_LIMIT = 65536
HOST = 'host'
GUEST = 'guest'

# QEMU listens with a backlog of one; a waiting guest reconnect needs a little more.
_HOST_BACKLOG = 1
_GUEST_BACKLOG = 8
_HUNG_UP = select.POLLHUP | select.POLLERR | getattr(select, 'POLLRDHUP', 0)
_STOP_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True)
class ChannelStats:
    """A snapshot of one channel's connections and byte counters."""

    host_connected: bool
    guest_connected: bool
    guest_half_closed: bool
    host_to_guest_bytes: int
    guest_to_host_bytes: int
    queued_to_guest: int
    queued_to_host: int
    peak_queued_to_guest: int
    peak_queued_to_host: int
    host_connections: int
    guest_connections: int
    guests_refused: int


class _Side(asyncio.BufferedProtocol):
    """One accepted connection; it hands every byte and event to its channel."""

    def __init__(self, channel: ChannelEmulator, kind: str) -> None:
        self.channel = channel
        self.kind = kind
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.send_paused = False
        self.half_closed = False
        # Reads land here and are copied into the channel's queue, so the queue
        # never grows past its limit by more than what get_buffer() allowed.
        self._scratch = memoryview(bytearray(min(channel.queue_limit, 65536)))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # Pause as soon as the peer stops reading: the bounded queue, not the
        # transport's buffer, is where waiting bytes belong.
        transport.set_write_buffer_limits(high=0)
        self.channel._side_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        room = self.channel._room_for(self)
        # asyncio treats an empty buffer as fatal; reading is paused before room hits 0.
        return self._scratch[: max(1, min(room, len(self._scratch)))]

    def buffer_updated(self, nbytes: int) -> None:
        self.channel._side_received(self, self._scratch[:nbytes])

    def eof_received(self) -> bool:
        # QEMU drops a host client on EOF, and the guest device cannot half-close.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.channel._side_lost(self, exc)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.send_paused = True

    def resume_writing(self) -> None:
        self.send_paused = False
        self.channel._flush()

    @property
    def usable(self) -> bool:
        """Return whether the transport is still open."""
        return self.transport is not None and not self.transport.is_closing()

    def peer_hung_up(self) -> bool:
        """Return whether the peer has already closed, even if its last bytes are unread."""
        if not self.usable:
            return True
        assert self.transport is not None
        sock = self.transport.get_extra_info('socket')
        poller = select.poll()
        poller.register(sock.fileno(), _HUNG_UP)
        return any(events & _HUNG_UP for _, events in poller.poll(0))


class ChannelEmulator:
    """Stands in for QEMU's chardev socket server and one guest's virtio-serial port."""

    def __init__(self, host_socket_path: str | os.PathLike[str], guest_socket_path: str | os.PathLike[str],
                 *, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        if queue_limit < 1:
            raise ValueError('queue_limit must be positive: %r' % (queue_limit,))
        self.host_socket_path = os.fspath(host_socket_path)
        self.guest_socket_path = os.fspath(guest_socket_path)
        socket_file.check_path(self.host_socket_path)
        socket_file.check_path(self.guest_socket_path)
        self.queue_limit = queue_limit
        self.host_to_guest_bytes = 0
        self.guest_to_host_bytes = 0
        self.peak_queued_to_guest = 0
        self.peak_queued_to_host = 0
        self.host_connections = 0
        self.guest_connections = 0
        self.guests_refused = 0
        self._host: _Side | None = None
        self._guest: _Side | None = None
        self._to_guest = bytearray()
        self._to_host = bytearray()
        self._listeners: list[tuple[socket.socket, str, int]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._host_free: asyncio.Event | None = None
        self._state = 'new'

    @property
    def host_connected(self) -> bool:
        """Return whether a host client is connected."""
        return self._host is not None

    @property
    def guest_connected(self) -> bool:
        """Return whether a guest connection is open, full duplex or half-closed."""
        return self._guest is not None

    @property
    def guest_half_closed(self) -> bool:
        """Return whether the guest connection only accepts guest writes (it read EOF)."""
        return self._guest is not None and self._guest.half_closed

    @property
    def queued_to_guest(self) -> int:
        """Return the bytes from the host waiting for a guest."""
        return len(self._to_guest)

    @property
    def queued_to_host(self) -> int:
        """Return the bytes from the guest waiting for a host."""
        return len(self._to_host)

    def stats(self) -> ChannelStats:
        """Return a snapshot of connections and counters."""
        return ChannelStats(
            host_connected=self.host_connected, guest_connected=self.guest_connected,
            guest_half_closed=self.guest_half_closed,
            host_to_guest_bytes=self.host_to_guest_bytes, guest_to_host_bytes=self.guest_to_host_bytes,
            queued_to_guest=self.queued_to_guest, queued_to_host=self.queued_to_host,
            peak_queued_to_guest=self.peak_queued_to_guest, peak_queued_to_host=self.peak_queued_to_host,
            host_connections=self.host_connections, guest_connections=self.guest_connections,
            guests_refused=self.guests_refused)

    async def start(self) -> None:
        """Bind both sockets (replacing stale files) and start accepting."""
        if self._state != 'new':
            raise RuntimeError('a ChannelEmulator starts only once')
        self._state = 'running'
        self._host_free = asyncio.Event()
        self._host_free.set()
        try:
            # Guest first: once the host socket appears, the channel is complete.
            for path, backlog in ((self.guest_socket_path, _GUEST_BACKLOG),
                                  (self.host_socket_path, _HOST_BACKLOG)):
                sock, inode = socket_file.bind_listener(path, backlog)
                self._listeners.append((sock, path, inode))
        except BaseException:
            await self.stop()
            raise
        guest_listener, host_listener = (sock for sock, _, _ in self._listeners)
        self._tasks = [asyncio.create_task(self._serve_guests(guest_listener)),
                       asyncio.create_task(self._serve_hosts(host_listener))]
        LOG.info('channel ready: host socket %s, guest socket %s', self.host_socket_path, self.guest_socket_path)

    async def stop(self) -> None:
        """Drop both connections, stop listening and remove both socket files."""
        if self._state in ('stopping', 'stopped'):
            return
        self._state = 'stopping'
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock, path, inode in self._listeners:
            sock.close()
            socket_file.unlink_if_same(path, inode)
        sides = [side for side in (self._host, self._guest) if side is not None]
        for side in sides:
            if side.transport is not None:
                side.transport.abort()
        if sides:
            await asyncio.wait([side.closed for side in sides], timeout=_STOP_TIMEOUT)
        self._state = 'stopped'
        LOG.info('channel stopped: host socket %s', self.host_socket_path)

    async def _serve_hosts(self, listener: socket.socket) -> None:
        """Accept one host client at a time."""
        loop = asyncio.get_running_loop()
        assert self._host_free is not None
        while True:
            # QEMU stops listening while a client is connected: later clients
            # wait in the kernel's backlog until the current one leaves.
            await self._host_free.wait()
            conn, _ = await loop.sock_accept(listener)
            self._host_free.clear()
            try:
                await loop.connect_accepted_socket(lambda: _Side(self, HOST), conn)
            except OSError as exc:
                LOG.warning('host connection failed on %s: %s', self.host_socket_path, exc)
                conn.close()
                self._host_free.set()

    async def _serve_guests(self, listener: socket.socket) -> None:
        """Accept guest connections; refuse a second one while the first is open."""
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            try:
                old = self._guest
                if old is not None:
                    if not old.peer_hung_up():
                        # The real device answers a second open() with EBUSY.
                        self.guests_refused += 1
                        LOG.warning('guest connection refused on %s: port already open', self.guest_socket_path)
                        conn.close()
                        continue
                    # The old guest closed but its last bytes are still unread:
                    # let them through before the new connection takes the port.
                    await old.closed
                await loop.connect_accepted_socket(lambda: _Side(self, GUEST), conn)
            except OSError as exc:
                LOG.warning('guest connection failed on %s: %s', self.guest_socket_path, exc)
                conn.close()
            except BaseException:
                conn.close()
                raise

    def _side_made(self, side: _Side) -> None:
        if side.kind == HOST:
            self._host = side
            self.host_connections += 1
            LOG.info('host connected to %s', self.host_socket_path)
        else:
            self._guest = side
            self.guest_connections += 1
            if self._host is None:
                # No host: the device reads EOF at once but still takes writes.
                self._half_close(side)
                LOG.info('guest connected to %s without a host: half-closed', self.guest_socket_path)
            else:
                LOG.info('guest connected to %s', self.guest_socket_path)
        self._flush()

    def _side_lost(self, side: _Side, exc: Exception | None) -> None:
        if side is self._host:
            self._host = None
            LOG.info('host disconnected from %s%s', self.host_socket_path, ': %s' % exc if exc else '')
            if self._host_free is not None:
                self._host_free.set()
            guest = self._guest
            if guest is not None and not guest.half_closed and guest.usable:
                self._half_close(guest)
                LOG.info('guest on %s half-closed: host left', self.guest_socket_path)
        elif side is self._guest:
            self._guest = None
            LOG.info('guest disconnected from %s%s', self.guest_socket_path, ': %s' % exc if exc else '')
        self._update_reading()

    def _room_for(self, side: _Side) -> int:
        queue = self._to_guest if side.kind == HOST else self._to_host
        return self.queue_limit - len(queue)

    def _side_received(self, side: _Side, data: memoryview) -> None:
        if side.kind == HOST:
            self._to_guest += data
            self.peak_queued_to_guest = max(self.peak_queued_to_guest, len(self._to_guest))
        else:
            self._to_host += data
            self.peak_queued_to_host = max(self.peak_queued_to_host, len(self._to_host))
        self._flush()

    def _half_close(self, guest: _Side) -> None:
        """Give the guest what is queued for it, then EOF; keep taking its writes."""
        assert guest.transport is not None
        # Like the device: bytes already queued are read before the EOF.
        if self._to_guest:
            guest.transport.write(bytes(self._to_guest))
            self.host_to_guest_bytes += len(self._to_guest)
            self._to_guest.clear()
        guest.half_closed = True
        guest.transport.write_eof()

    def _flush(self) -> None:
        """Move queued bytes to whichever peer can take them, then adjust reading."""
        guest, host = self._guest, self._host
        if self._to_guest and guest is not None and guest.usable and not guest.half_closed \
                and not guest.send_paused:
            assert guest.transport is not None
            guest.transport.write(bytes(self._to_guest))
            self.host_to_guest_bytes += len(self._to_guest)
            self._to_guest.clear()
        if self._to_host and host is not None and host.usable and not host.send_paused:
            assert host.transport is not None
            host.transport.write(bytes(self._to_host))
            self.guest_to_host_bytes += len(self._to_host)
            self._to_host.clear()
        self._update_reading()

    def _update_reading(self) -> None:
        """Stop reading a side whose queue is full; nothing is ever dropped."""
        for side, queue in ((self._host, self._to_guest), (self._guest, self._to_host)):
            if side is None or not side.usable:
                continue
            assert side.transport is not None
            full = len(queue) >= self.queue_limit
            if full and side.transport.is_reading():
                side.transport.pause_reading()
            elif not full and not side.transport.is_reading():
                side.transport.resume_reading()
