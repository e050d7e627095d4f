"""Blocking client library of the guest agent's local API, for applications inside the guest."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Tuple, Union

from ha_guest.guest import localapi
from ha_guest.protocol.limits import MAX_BROADCAST_BYTES, MAX_REASON_CHARS

LOG = logging.getLogger(__name__)

#: Error code of AgentError when the agent's reply cannot be understood (never sent by the agent).
E_BAD_REPLY = "bad_reply"

_RECV_BYTES = 4096

Payload = Union[bytes, bytearray, memoryview]


class ClientError(Exception):
    """Base of every error this module raises."""


class AgentError(ClientError):
    """The agent refused a request ({"ok": false}), or its reply was unusable (code bad_reply)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__("%s: %s" % (code, detail))
        self.code = code
        self.detail = detail


class AgentUnavailable(ClientError):
    """The agent's socket is missing or refuses connections, or the agent went away."""


class AgentTimeout(AgentUnavailable):
    """The agent did not answer within the timeout."""


class _Connection:
    """One connected socket to the agent, read line by line with a size limit."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self._sock: Optional[socket.socket] = sock
        self._path = path
        self._buffer = bytearray()

    @classmethod
    def open(cls, path: str, deadline: float) -> "_Connection":
        """Connect to the agent's socket; raise AgentUnavailable with a hint on failure."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(path)
        except socket.timeout:
            sock.close()
            raise AgentTimeout("timed out connecting to the agent at %s" % path) from None
        except FileNotFoundError:
            sock.close()
            raise AgentUnavailable("no agent socket at %s (is ha-guest-agent running?)" % path) from None
        except ConnectionRefusedError:
            sock.close()
            raise AgentUnavailable("the agent socket %s refuses connections (agent not running?)" % path) from None
        except PermissionError:
            sock.close()
            raise AgentUnavailable("no permission to connect to %s" % path) from None
        except OSError as exc:
            sock.close()
            raise AgentUnavailable("cannot connect to %s: %s" % (path, exc.strerror or exc)) from None
        return cls(sock, path)

    def send(self, line: bytes, deadline: float) -> None:
        """Send one request line within the deadline."""
        sock = self._socket()
        try:
            # Since Python 3.5 the timeout bounds the whole sendall, not each chunk.
            sock.settimeout(_remaining(deadline))
            sock.sendall(line)
        except socket.timeout:
            raise AgentTimeout("timed out sending to the agent at %s" % self._path) from None
        except OSError as exc:
            raise AgentUnavailable("the agent at %s went away: %s" % (self._path, exc.strerror or exc)) from None

    def read_line(self, deadline: Optional[float]) -> Optional[bytes]:
        """Return the next line without its newline, or None at end of stream."""
        sock = self._socket()
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                if len(line) > localapi.MAX_LINE_BYTES:
                    raise AgentError(E_BAD_REPLY, "reply line longer than %d bytes" % localapi.MAX_LINE_BYTES)
                return line
            # Checked before every read so a runaway peer costs at most one limit plus one chunk of memory.
            if len(self._buffer) > localapi.MAX_LINE_BYTES:
                self.close()
                raise AgentError(E_BAD_REPLY, "reply line longer than %d bytes" % localapi.MAX_LINE_BYTES)
            try:
                sock.settimeout(None if deadline is None else _remaining(deadline))
                chunk = sock.recv(_RECV_BYTES)
            except socket.timeout:
                # The partial line stays buffered: a listener may keep reading after a timeout.
                raise AgentTimeout("no reply from the agent at %s in time" % self._path) from None
            except OSError as exc:
                raise AgentUnavailable("the agent at %s went away: %s" % (self._path, exc.strerror or exc)) from None
            if not chunk:
                return None
            self._buffer += chunk

    def close(self) -> None:
        """Close the socket; safe to call twice."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise AgentUnavailable("connection to the agent is closed")
        return self._sock


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise AgentTimeout("timed out waiting for the agent")
    return left


def _decode(line: Optional[bytes]) -> Dict[str, Any]:
    if line is None:
        raise AgentUnavailable("the agent closed the connection")
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AgentError(E_BAD_REPLY, "reply is not a UTF-8 JSON object") from None
    if not isinstance(obj, dict):
        raise AgentError(E_BAD_REPLY, "reply is not a JSON object")
    return obj


def _check(reply: Dict[str, Any]) -> Dict[str, Any]:
    """Return a success reply without its "ok" field; raise AgentError for an error reply."""
    ok = reply.pop("ok", None)
    if ok is True:
        return reply
    if ok is False:
        code = reply.get("error")
        detail = reply.get("detail")
        raise AgentError(
            code if isinstance(code, str) and code else "error",
            (detail if isinstance(detail, str) else "")[:MAX_REASON_CHARS],
        )
    raise AgentError(E_BAD_REPLY, 'reply has no boolean "ok" field')


def _event(obj: Dict[str, Any]) -> Dict[str, Any]:
    """Validate one event line; broadcast payloads are decoded to bytes."""
    if obj.get("ok") is False:
        _check(obj)
    name = obj.get("event")
    if not isinstance(name, str):
        raise AgentError(E_BAD_REPLY, 'event line has no "event" name')
    if name == localapi.EV_BROADCAST:
        payload = obj.get("payload")
        try:
            obj["payload"] = base64.b64decode(str(payload).encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise AgentError(E_BAD_REPLY, "broadcast event payload is not base64") from None
    return obj


def _request_line(request: Dict[str, Any]) -> bytes:
    """Serialise a request after validating it exactly as the agent will."""
    line = localapi.dumps_line(request)
    try:
        localapi.parse_request(line[:-1])
    except localapi.RequestError as exc:
        # Same code and text the agent would reply with, without the round trip.
        raise AgentError(exc.code, exc.detail) from None
    return line


class EventStream:
    """The events of one listen request: iterate it, then close it (or use ``with``)."""

    def __init__(self, conn: _Connection, idle_timeout: Optional[float], first: Optional[Dict[str, Any]]) -> None:
        self._conn: Optional[_Connection] = conn
        self._idle_timeout = idle_timeout
        self._first = first

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Dict[str, Any]:
        """Return the next event; AgentTimeout after idle_timeout (the stream stays open)."""
        if self._conn is None:
            raise StopIteration
        if self._first is not None:
            first, self._first = self._first, None
            return _event(first)
        deadline = None if self._idle_timeout is None else time.monotonic() + self._idle_timeout
        line = self._conn.read_line(deadline)
        if line is None:
            self.close()
            raise AgentUnavailable("the agent closed the event stream")
        return _event(_decode(line))

    def close(self) -> None:
        """Stop listening; further iteration ends at once."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class AgentClient:
    """Talks to ha-guest-agent over its UNIX socket.

    Every call opens its own connection and closes it after the reply: calls are rare, a
    UNIX socket connect is cheap, and an agent restart between calls is then invisible.
    The client is thread-safe for the same reason.
    """

    def __init__(self, socket_path: str = localapi.DEFAULT_SOCKET, timeout: float = 5.0) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.socket_path = socket_path
        self.timeout = timeout

    def report_healthy(self, source: str, expires_in_s: Optional[float] = None) -> None:
        """Report SOURCE healthy; unless renewed within expires_in_s it turns unhealthy."""
        self._call(_report(source, "healthy", "", expires_in_s))

    def report_unhealthy(self, source: str, reason: str, expires_in_s: Optional[float] = None) -> None:
        """Report SOURCE unhealthy with a reason (at most 256 characters)."""
        self._call(_report(source, "unhealthy", reason, expires_in_s))

    def clear(self, source: str) -> None:
        """Forget the report of SOURCE."""
        self._call({"op": localapi.OP_CLEAR, "source": source})

    def agent_status(self) -> Dict[str, Any]:
        """Return the agent's status (connection, registration, health, checks, reports, counters)."""
        return self._call({"op": localapi.OP_AGENT_STATUS})

    def broadcast(self, payload: Payload) -> None:
        """Send a datagram of at most 3050 bytes to every other member of the server group."""
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError("payload must be bytes, not %s" % type(payload).__name__)
        data = bytes(payload)
        if len(data) > MAX_BROADCAST_BYTES:
            raise AgentError(
                localapi.E_TOO_LARGE,
                "broadcast payload is %d bytes; the limit is %d" % (len(data), MAX_BROADCAST_BYTES),
            )
        self._call({"op": localapi.OP_BROADCAST, "payload": base64.b64encode(data).decode("ascii")})

    def group_status(self, timeout_s: float = 2.0) -> List[Dict[str, Any]]:
        """Return every server group member ({"uuid", "state", "power_state", "self"}), self included."""
        # The agent waits up to timeout_s for the host, so allow that on top of our own timeout.
        reply = self._call({"op": localapi.OP_GROUP_STATUS, "timeout_s": timeout_s}, self.timeout + timeout_s)
        members = reply.get("members")
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise AgentError(E_BAD_REPLY, 'group_status reply has no "members" list of objects')
        return members

    def listen(self, idle_timeout: Optional[float] = None) -> EventStream:
        """Subscribe to SGM events; the returned stream keeps its connection until closed."""
        line = _request_line({"op": localapi.OP_LISTEN})
        deadline = time.monotonic() + self.timeout
        conn = _Connection.open(self.socket_path, deadline)
        try:
            conn.send(line, deadline)
            first: Optional[Dict[str, Any]] = _decode(conn.read_line(deadline))
            # localapi promises an {"ok": true} line first; an event first is unambiguous, so accept it too.
            if first is not None and ("ok" in first or "event" not in first):
                _check(first)
                first = None
        except BaseException:
            conn.close()
            raise
        return EventStream(conn, idle_timeout, first)

    def _call(self, request: Dict[str, Any], timeout: Optional[float] = None) -> Dict[str, Any]:
        line = _request_line(request)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        conn = _Connection.open(self.socket_path, deadline)
        try:
            conn.send(line, deadline)
            return _check(_decode(conn.read_line(deadline)))
        finally:
            conn.close()


def _report(source: str, health: str, reason: str, expires_in_s: Optional[float]) -> Dict[str, Any]:
    request: Dict[str, Any] = {"op": localapi.OP_REPORT, "source": source, "health": health, "reason": reason}
    if expires_in_s is not None:
        request["expires_in_s"] = expires_in_s
    return request


class HealthReporter:
    """Renews an expiring report from a background thread: if the app dies, the report lapses.

    The agent turns a report that is not renewed within expires_in_s unhealthy by itself, so
    a hung or crashed application makes the guest unhealthy without any help.
    """

    def __init__(
        self, client: AgentClient, source: str, interval_s: float = 5.0, expires_in_s: Optional[float] = None
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        expires = 3.0 * interval_s if expires_in_s is None else float(expires_in_s)
        if expires <= interval_s:
            # Otherwise the report lapses between two renewals and flaps unhealthy.
            raise ValueError("expires_in_s must be longer than interval_s")
        _request_line(_report(source, "healthy", "", expires))  # fail now, not in the thread
        self.client = client
        self.source = source
        self.interval_s = float(interval_s)
        self.expires_in_s = expires
        #: The error of the latest failed report, None once a report got through.
        self.last_error: Optional[ClientError] = None
        self._lock = threading.Lock()
        self._health: Tuple[str, str] = ("healthy", "")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "HealthReporter":
        """Start renewing in a daemon thread; the first report goes out at once."""
        if self._thread is not None:
            raise RuntimeError("HealthReporter already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ha-guest-report-" + self.source, daemon=True)
        self._thread.start()
        return self

    def stop(self, clear: bool = True) -> None:
        """Stop renewing; clear the report (a deliberate stop is not a fault) unless clear=False."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(self.client.timeout + 1.0)
        if clear:
            try:
                self.client.clear(self.source)
            except ClientError as exc:
                LOG.warning("could not clear health report %s: %s", self.source, exc)

    def set_unhealthy(self, reason: str) -> None:
        """Renew an unhealthy report from now on, sent at once."""
        self._set(("unhealthy", reason[:MAX_REASON_CHARS]))

    def set_healthy(self) -> None:
        """Renew a healthy report from now on, sent at once."""
        self._set(("healthy", ""))

    def _set(self, health: Tuple[str, str]) -> None:
        with self._lock:
            self._health = health
        self._wake.set()

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            # Cleared before reading the state so a concurrent _set() always causes one more report.
            self._wake.clear()
            with self._lock:
                health, reason = self._health
            try:
                if health == "healthy":
                    self.client.report_healthy(self.source, self.expires_in_s)
                else:
                    self.client.report_unhealthy(self.source, reason, self.expires_in_s)
            except ClientError as exc:
                self.last_error = exc
                if not failing:
                    LOG.warning("health report %s failed, retrying every %ss: %s", self.source, self.interval_s, exc)
                failing = True
            else:
                self.last_error = None
                if failing:
                    LOG.info("health report %s delivered again", self.source)
                failing = False
            self._wake.wait(self.interval_s)

    def __enter__(self) -> "HealthReporter":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
