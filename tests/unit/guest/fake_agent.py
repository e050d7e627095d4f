"""A test double of ha-guest-agent's local API: a real UNIX socket served by threads."""

from __future__ import annotations

import base64
import os
import queue
import shutil
import socket
import tempfile
import threading
from typing import Any, Callable, Dict, List, Optional, Union

from ha_guest.guest import localapi

#: Reply value that makes the fake agent never answer (until the client hangs up).
HANG = object()
#: Reply value that makes the fake agent close the connection without a reply.
CLOSE = object()

Reply = Union[Dict[str, Any], bytes, object]

SELF_UUID = "11111111-2222-3333-4444-555555555555"
PEER_UUID = "66666666-7777-8888-9999-000000000000"

STATUS = localapi.ok(
    connected=True,
    session="s-1",
    version=1,
    registered=True,
    heartbeat=True,
    heartbeat_state="registered",
    interval_ms=1000,
    miss_threshold=3,
    health="unhealthy",
    reason="check sshd exited 1: no sshd",
    checks=[{"name": "sshd", "health": "unhealthy", "reason": "check sshd exited 1: no sshd"}],
    reports=[{"source": "app", "health": "healthy", "reason": "", "expires_in_s": 12.5}],
    counters={"challenges": 4, "responses": 4, "protocol_errors": 0, "stale_frames": 0, "reconnects": 1},
)

MEMBERS = [
    {"uuid": SELF_UUID, "state": "active", "power_state": "running", "self": True},
    {"uuid": PEER_UUID, "state": "stopped", "power_state": "shutdown", "self": False},
]


def broadcast_event(payload: bytes, sender: str = PEER_UUID) -> Dict[str, Any]:
    """Return a broadcast event as the agent streams it."""
    return {"event": localapi.EV_BROADCAST, "sender": sender, "payload": base64.b64encode(payload).decode("ascii")}


class FakeAgent:
    """Answers local API requests like the agent; validates them with localapi.parse_request."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="ha-guest-test-")
        self.path = os.path.join(self.dir, "agent.sock")
        #: Requests as parse_request normalised them, in arrival order.
        self.requests: List[Dict[str, Any]] = []
        #: Raw request lines (without the newline).
        self.lines: List[bytes] = []
        #: Per-op reply overrides: a dict, raw bytes, HANG, CLOSE or a callable(request) -> one of those.
        self.replies: Dict[str, Union[Reply, Callable[[Dict[str, Any]], Reply]]] = {}
        #: Event lines sent to listeners (bytes, dicts) or CLOSE to hang up.
        self.events: "queue.Queue[Any]" = queue.Queue()
        self.listener_gone = threading.Event()
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def start(self) -> "FakeAgent":
        """Bind the socket and serve it from a thread."""
        self._server.bind(self.path)
        self._server.listen(8)
        self._server.settimeout(0.05)
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        """Stop serving, join the threads and remove the temporary folder."""
        self._stop.set()
        for thread in self._threads:
            thread.join(5.0)
        self._server.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._spawn(self._serve, conn)

    def _read_line(self, conn: socket.socket) -> Optional[bytes]:
        data = b""
        while b"\n" not in data:
            if self._stop.is_set() or len(data) > 2 * localapi.MAX_LINE_BYTES:
                return None
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return None
            data += chunk
        return data.split(b"\n", 1)[0]

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        try:
            line = self._read_line(conn)
            if line is None:
                return
            self.lines.append(line)
            try:
                request = localapi.parse_request(line)
            except localapi.RequestError as exc:
                conn.sendall(localapi.dumps_line(localapi.error(exc.code, exc.detail)))
                return
            self.requests.append(request)
            reply = self.replies.get(request["op"], self._default(request))
            if callable(reply):
                reply = reply(request)
            if reply is CLOSE:
                return
            if reply is HANG:
                self._wait_hangup(conn)
                return
            conn.sendall(reply if isinstance(reply, bytes) else localapi.dumps_line(reply))  # type: ignore[arg-type]
            if request["op"] == localapi.OP_LISTEN and reply == localapi.ok():
                self._stream(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def _default(self, request: Dict[str, Any]) -> Reply:
        if request["op"] == localapi.OP_AGENT_STATUS:
            return dict(STATUS)
        if request["op"] == localapi.OP_GROUP_STATUS:
            return localapi.ok(members=MEMBERS)
        return localapi.ok()

    def _wait_hangup(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                if not conn.recv(4096):
                    return
            except socket.timeout:
                continue

    def _stream(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                item = self.events.get(timeout=0.02)
            except queue.Empty:
                # Notice a client that hung up even when no event is due.
                try:
                    if conn.recv(4096) == b"":
                        self.listener_gone.set()
                        return
                except socket.timeout:
                    pass
                continue
            if item is CLOSE:
                return
            conn.sendall(item if isinstance(item, bytes) else localapi.dumps_line(item))
