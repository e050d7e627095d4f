"""A scripted host side of one channel, for functional tests (not the compute agent).

It connects to the host socket of a channel (QEMU's, or the emulator's) like the
compute agent will, starts a session per connection, registers the guest agent,
challenges it on a schedule and records everything it sees in an EventLog. It
runs one reader thread per connection and offers a synchronous API; it keeps no
state that a test could not inspect.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ha_guest.protocol import Message, sgm
from ha_guest.protocol.limits import MAX_INTERVAL_MS, MIN_INTERVAL_MS
from ha_guest.testing import events as ev
from ha_guest.testing.events import ChallengeRecord, EventLog
from ha_guest.testing.host_session import HostSession

#: Re-send a hello this often until the guest acknowledges it.
HELLO_RETRY_S = 1.0
_SEND_TIMEOUT_S = 5.0
_RECONNECT_S = 0.1


class ScriptedHost:
    """Plays the host side of one channel under a test's control; every public method is thread-safe."""

    def __init__(self, name: str = 'host', *, log: EventLog | None = None, miss_threshold: int = 1,
                 auto_challenge: bool = True, min_interval_ms: int = MIN_INTERVAL_MS,
                 max_interval_ms: int = MAX_INTERVAL_MS, members: Iterable[sgm.MemberStatus] = (),
                 status_nack: str | None = None, auto_reconnect: bool = False,
                 hello_retry_s: float = HELLO_RETRY_S, heartbeat_enabled: bool = True,
                 sgm_enabled: bool = True) -> None:
        self.name = name
        self.log = log if log is not None else EventLog()
        self.miss_threshold = miss_threshold
        self.min_interval_ms = min_interval_ms
        self.max_interval_ms = max_interval_ms
        #: Members sent in every status_reply; ``status_nack`` (a reason) nacks status requests instead.
        self.members: list[sgm.MemberStatus] = list(members)
        self.status_nack = status_nack
        #: The instance's features as its flavor would set them: heartbeat off answers init and response
        #: with base/error not_enabled, SGM off answers broadcast and status_request with nack not_enabled.
        self.heartbeat_enabled = heartbeat_enabled
        self.sgm_enabled = sgm_enabled
        self.auto_reconnect = auto_reconnect
        self.hello_retry_s = hello_retry_s
        #: (time, session, seq, payload) of every sgm/broadcast received.
        self.broadcasts: list[tuple[float, str | None, int, bytes]] = []
        self.stale_frames = 0
        self.bad_frames = 0
        self.unknown_nonces = 0
        self._lock = threading.RLock()
        self._auto_challenge = auto_challenge
        self._path: str | None = None
        self._sock: socket.socket | None = None
        # Replaced on every connection; read without the lock by the properties.
        self._s: HostSession | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)

    # -- connection ----------------------------------------------------------------------------

    def connect(self, path: str, timeout: float = 5.0) -> str:
        """Connect to a host socket (retrying until it accepts), start a session and send hello."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError('%s is already connected; disconnect() first' % self.name)
            self._path = path
            self._stop.clear()
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self._open(path)
                    break
                except OSError as exc:
                    if time.monotonic() >= deadline:
                        raise ConnectionError('%s: cannot connect to %s: %s' % (self.name, path, exc)) from None
                    time.sleep(_RECONNECT_S)
            self._thread = threading.Thread(target=self._run, name='scripted-host-%s' % self.name, daemon=True)
            self._thread.start()
            assert self._s is not None
            return self._s.id

    def disconnect(self) -> None:
        """Close the connection like a host that goes away; safe to call twice."""
        self._stop.set()
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_SEND_TIMEOUT_S * 2)
            if thread.is_alive():
                raise RuntimeError('%s: reader thread did not stop' % self.name)
        with self._lock:
            self._close('closed by the test')

    def close(self) -> None:
        """Disconnect and free the wake-up sockets."""
        self.disconnect()
        self._wake_r.close()
        self._wake_w.close()

    # Properties read one attribute without the lock, so wait predicates may use them: a
    # predicate runs under the log's lock, and the reader thread takes our lock before the log's.

    @property
    def connected(self) -> bool:
        """Return whether a connection is open."""
        return self._s is not None

    @property
    def session(self) -> str | None:
        """Return the current session id (None while disconnected)."""
        s = self._s
        return s.id if s is not None else None

    @property
    def registered(self) -> bool:
        """Return whether the guest registered in the current session (and has not exited)."""
        s = self._s
        return s is not None and s.registered

    @property
    def interval_ms(self) -> int | None:
        """Return the effective interval of the current registration."""
        s = self._s
        return s.interval_ms if s is not None else None

    # -- sending -------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send raw bytes as they are (for bad-input tests)."""
        with self._lock:
            self._session_or_fail()
            assert self._sock is not None
            self._sock.sendall(data)

    def send_message(self, message: Message) -> int:
        """Send one message of the current session; return its seq."""
        with self._lock:
            return self._session_or_fail().send(message)

    def set_auto_challenge(self, enabled: bool) -> None:
        """Start or stop the automatic challenge schedule (kept across connections)."""
        with self._lock:
            self._auto_challenge = enabled
            s = self._s
            if s is not None:
                s.next_challenge = time.monotonic() + (s.interval_ms or 0) / 1000.0
        self._wake()

    def challenge(self) -> str:
        """Send one challenge now (the previous one, if unanswered, counts as missed); return its nonce."""
        with self._lock:
            return self._session_or_fail().tick(time.monotonic())

    def send_broadcast_deliver(self, sender: str, payload: bytes) -> int:
        """Deliver a peer's broadcast to the guest."""
        return self.send_message(sgm.BroadcastDeliver(sender, payload))

    def send_notification(self, member: str, event: str, state: str, power_state: str = '') -> int:
        """Push a peer's state change to the guest."""
        return self.send_message(sgm.Notification(member, event, state, power_state))

    def send_nack(self, ref_seq: int, reason: str = sgm.NACK_UNAVAILABLE, detail: str = '') -> int:
        """Refuse an SGM request of the guest."""
        return self.send_message(sgm.Nack(ref_seq, reason, detail))

    def set_members(self, members: Sequence[tuple[str, str, str, bool]]) -> None:
        """Set the status_reply members from (uuid, state, power_state, is_self) tuples."""
        with self._lock:
            self.members = [sgm.member_status(*m) for m in members]

    # -- what was seen (delegates to the log, filtered to this host) ---------------------------

    def mark(self) -> int:
        """Return a position in the log; wait_for(since=mark) sees only later events."""
        return self.log.mark()

    def events(self, kind: str | None = None, since: int = 0) -> list[ev.Event]:
        """Return this host's events."""
        return self.log.events(kind, self.name, since)

    def challenges(self, session: str | None = None) -> list[ChallengeRecord]:
        """Return this host's challenge records."""
        return self.log.challenges(self.name, session)

    def wait_for(self, kind: str, since: int = 0, timeout: float = 5.0, where: Any = None) -> ev.Event:
        """Wait for this host's next event of ``kind`` (see EventLog.wait_for)."""
        return self.log.wait_for(kind, self.name, since, timeout, where)

    def wait_until(self, predicate: Any, timeout: float = 5.0, what: str = 'condition') -> Any:
        """Wait until ``predicate()`` is truthy (see EventLog.wait_until)."""
        return self.log.wait_until(predicate, timeout, what)

    # -- internals (called with self._lock held unless said otherwise) --------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b'x')
        except OSError:
            pass  # already woken (buffer full), or closed

    def _session_or_fail(self) -> HostSession:
        if self._s is None:
            raise ConnectionError('%s is not connected' % self.name)
        return self._s

    def _open(self, path: str) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(_SEND_TIMEOUT_S)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        session = HostSession(self, sock.sendall)
        self._s = session
        self.log.add(ev.CONNECTED, self.name, session.id, path=path)
        session.send_hello()

    def _close(self, why: str) -> None:
        sock, session = self._sock, self._s
        self._sock = self._s = None
        if sock is None or session is None:
            return
        sock.close()
        self.log.add(ev.DISCONNECTED, self.name, session.id, why=why)

    def _run(self) -> None:
        """Reader thread: feed received bytes to the session and run its timers."""
        while not self._stop.is_set():
            with self._lock:
                sock, session = self._sock, self._s
                timeout = 0.0
                if session is not None:
                    try:
                        timeout = session.run_timers(time.monotonic(), self._auto_challenge)
                    except OSError as exc:
                        self._close('send failed: %s' % exc)
                        continue
            if sock is None:
                if not self.auto_reconnect or not self._reconnect():
                    return
                continue
            try:
                ready, _, _ = select.select([sock, self._wake_r], [], [], timeout)
                data = sock.recv(65536) if sock in ready else None
            except OSError as exc:
                with self._lock:
                    if self._sock is sock:
                        self._close('receive failed: %s' % exc)
                continue
            if self._wake_r in ready:
                self._wake_r.recv(4096)
            if data is None:
                continue
            with self._lock:
                if self._s is not session or session is None:
                    continue
                if not data:
                    self._close('EOF from the channel')
                    continue
                try:
                    session.feed(data)
                except OSError as exc:
                    self._close('send failed: %s' % exc)

    def _reconnect(self) -> bool:
        """Try to reconnect until it works or disconnect() is called (auto_reconnect only)."""
        assert self._path is not None
        while not self._stop.wait(_RECONNECT_S):
            with self._lock:
                try:
                    self._open(self._path)
                    return True
                except OSError:
                    pass  # the socket is not back yet
        return False
