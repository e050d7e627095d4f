"""The local API server: newline-delimited JSON requests over a UNIX socket.

Each connection is served in order, one reply line per request line. Lines
longer than MAX_LINE_BYTES get a ``too_large`` error and the reader skips to
the next newline. At most MAX_CLIENTS connections are served; one more gets a
``busy`` error line and is closed. After ``listen`` the connection only
streams events (further input is ignored); each listener has a bounded queue
that drops its oldest events and then reports ``{"event": "dropped", ...}``.

The socket is created with mode 0660 in a directory made if missing; a stale
socket left by a dead agent is replaced, a live one is refused, and the
socket is removed on stop unless someone else has replaced it meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import stat
from typing import Any, Awaitable, Callable, Deque, Dict, Optional, Set, Tuple

from ha_guest.guest import localapi
from ha_guest.guest.localapi import RequestError, dumps_line, error, ok
from ha_guest.protocol.errors import ProtocolError
from ha_guest.protocol.framing import FrameDecoder

LOG = logging.getLogger(__name__)

Dispatch = Callable[[Dict[str, Any]], Awaitable[Dict[str, Any]]]

E_INTERNAL = "internal"
SOCKET_MODE = 0o660
DIR_MODE = 0o755
# A connection that sends no request for this long is closed (listeners excepted).
IDLE_TIMEOUT_S = 60.0
# A client that does not read its replies for this long is dropped.
REPLY_DRAIN_TIMEOUT_S = 5.0
_READ_SIZE = 65536


class ApiSocketInUse(Exception):
    """Another process serves the socket path, or the path is not a socket."""


def _prepare_path(path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", mode=DIR_MODE, exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ApiSocketInUse("%s exists and is not a socket" % path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
    except OSError:
        # Nobody answers: a dead agent's leftover.
        LOG.info("replacing stale socket %s", path)
        os.unlink(path)
        return
    finally:
        probe.close()
    raise ApiSocketInUse("another process serves %s" % path)


def _group_id(group: str) -> int:
    import grp  # not on every platform; only needed when a group is set

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise OSError("unknown group %r for the local API socket" % group) from None


def _identity(path: str) -> Tuple[int, int, int]:
    # Inode numbers are reused at once; the change time tells a new file apart.
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_ctime_ns


class _Listener:
    """One ``listen`` connection's bounded event queue."""

    def __init__(self, writer: asyncio.StreamWriter, backlog: int) -> None:
        self.writer = writer
        self.backlog = backlog
        self.queue: Deque[Dict[str, Any]] = collections.deque()
        self.dropped = 0
        self.wake = asyncio.Event()

    def push(self, event: Dict[str, Any]) -> None:
        if len(self.queue) >= self.backlog:
            # Oldest first: a listener that catches up wants the latest news.
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(event)
        self.wake.set()

    async def pump(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue or self.dropped:
                if self.dropped:
                    line = dumps_line({"event": localapi.EV_DROPPED, "count": self.dropped})
                    self.dropped = 0
                else:
                    line = dumps_line(self.queue.popleft())
                self.writer.write(line)
                # No timeout: a stalled listener only loses events, others go on.
                await self.writer.drain()


class ApiServer:
    """Serve the local API on a UNIX socket; requests go to ``dispatch``."""

    def __init__(self, path: str, dispatch: Dispatch, max_clients: int = localapi.MAX_CLIENTS,
                 listener_backlog: int = localapi.MAX_LISTENER_BACKLOG, group: Optional[str] = None,
                 idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.group = group
        self.idle_timeout_s = idle_timeout_s
        self.path = path
        self.max_clients = max_clients
        self.listener_backlog = listener_backlog
        self.refused = 0
        self._dispatch = dispatch
        self._server: Optional[asyncio.AbstractServer] = None
        self._identity: Optional[Tuple[int, int, int]] = None
        self._tasks: Set["asyncio.Task[Any]"] = set()
        self._writers: Set[asyncio.StreamWriter] = set()
        self._listeners: Set[_Listener] = set()

    @property
    def clients(self) -> int:
        """Connections being served."""
        return len(self._writers)

    @property
    def listeners(self) -> int:
        """Connections streaming events."""
        return len(self._listeners)

    async def start(self) -> None:
        """Create the socket and start serving; raise OSError or ApiSocketInUse."""
        _prepare_path(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The umask closes the window between bind and chmod.
        old_umask = os.umask(0o777 & ~SOCKET_MODE)
        try:
            sock.bind(self.path)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        os.chmod(self.path, SOCKET_MODE)
        if self.group:
            # Applications of this group may report health without root.
            os.chown(self.path, -1, _group_id(self.group))
        self._identity = _identity(self.path)
        self._server = await asyncio.start_unix_server(self._client, sock=sock)
        LOG.info("local API on %s", self.path)

    async def stop(self) -> None:
        """Close every connection and the socket, and remove the socket file."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        try:
            if self._identity is not None and _identity(self.path) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass
        self._identity = None

    def publish(self, event: Dict[str, Any]) -> None:
        """Queue an event for every listener; never blocks."""
        for listener in self._listeners:
            listener.push(event)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= self.max_clients:
            self.refused += 1
            LOG.debug("refusing local API client: %d connected", len(self._writers))
            writer.write(dumps_line(error(localapi.E_BUSY, "too many clients")))
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.TimeoutError) as exc:
            LOG.debug("local API client dropped: %r", exc)
        except asyncio.CancelledError:
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(localapi.MAX_LINE_BYTES)
        while True:
            try:
                data = await asyncio.wait_for(reader.read(_READ_SIZE), self.idle_timeout_s)
            except asyncio.TimeoutError:
                # A silent client would hold one of the few client slots forever.
                LOG.debug("closing local API client idle for %.0f s", self.idle_timeout_s)
                return
            # A last request without its newline is still served.
            items = decoder.feed(data if data else b"\n")
            for item in items:
                if isinstance(item, ProtocolError):
                    reply = error(localapi.E_TOO_LARGE, "request longer than %d bytes" % localapi.MAX_LINE_BYTES)
                else:
                    try:
                        request = localapi.parse_request(item)
                    except RequestError as exc:
                        reply = error(exc.code, exc.detail)
                    else:
                        if request["op"] == localapi.OP_LISTEN:
                            await self._listen(reader, writer)
                            return
                        reply = await self._call(request)
                writer.write(dumps_line(reply))
                await asyncio.wait_for(writer.drain(), REPLY_DRAIN_TIMEOUT_S)
            if not data:
                return

    async def _call(self, request: Dict[str, Any]) -> Dict[str, Any]:
        try:
            return await self._dispatch(request)
        except RequestError as exc:
            return error(exc.code, exc.detail)
        except Exception as exc:  # noqa: BLE001 - one bad request must not kill the server
            LOG.exception("local API request %s failed", request.get("op"))
            return error(E_INTERNAL, str(exc) or type(exc).__name__)

    async def _listen(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(dumps_line(ok()))
        await asyncio.wait_for(writer.drain(), REPLY_DRAIN_TIMEOUT_S)
        listener = _Listener(writer, self.listener_backlog)
        self._listeners.add(listener)
        pump = asyncio.ensure_future(listener.pump())
        try:
            # Input after listen is ignored; reading only notices the hang-up.
            while await reader.read(_READ_SIZE):
                pass
        finally:
            self._listeners.discard(listener)
            pump.cancel()
            try:
                await pump
            except (asyncio.CancelledError, ConnectionError):
                pass
