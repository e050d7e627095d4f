"""Protocol state of one connection of the scripted host: hello, registration, challenges, answers."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ha_guest.protocol import HOST, ChannelCodec, Message, ProtocolError, errors, heartbeat, new_nonce, sgm, versioning
from ha_guest.protocol import messages as base
from ha_guest.protocol.constants import APP_BASE
from ha_guest.protocol.envelope import encode_message
from ha_guest.protocol.limits import MAX_INTERVAL_MS, MIN_INTERVAL_MS
from ha_guest.testing import events as ev
from ha_guest.testing.events import ChallengeRecord

if TYPE_CHECKING:
    from ha_guest.testing.scripted_host import ScriptedHost

#: A hello_request this soon after our hello is answered by the hello in flight.
HELLO_IN_FLIGHT_S = 0.5
#: Challenges remembered per session, to recognise late answers.
_REMEMBERED_NONCES = 256


class HostSession:
    """One session (one connection); the owner's lock is held around every call."""

    def __init__(self, owner: ScriptedHost, write: Callable[[bytes], None]) -> None:
        self.owner = owner
        self.name = owner.name
        self.log = owner.log
        self._write = write
        # A fresh codec per connection: QEMU may still hold bytes of the last one.
        self.codec = ChannelCodec(HOST)
        self.id = self.codec.start_session()
        self.hello_sent_at = 0.0
        self.hello_acked = False
        self.registered = False
        self.interval_ms: int | None = None
        self.next_challenge = 0.0
        self._outstanding: ChallengeRecord | None = None
        self._misses = 0
        self._health: str | None = None
        self._reason = ''
        self._nonces: collections.OrderedDict[str, ChallengeRecord] = collections.OrderedDict()

    def send(self, message: Message) -> int:
        """Send one message stamped with this session; return its seq."""
        seq = self.codec.next_seq()
        version = versioning.BASE_VERSION if message.APP == APP_BASE else self.codec.version
        self._write(encode_message(message, seq, self.id, version))
        return seq

    def send_hello(self) -> None:
        """Offer every version we speak; the guest picks one."""
        self.send(base.Hello(versioning.MIN_VERSION, versioning.MAX_VERSION))
        self.hello_sent_at = time.monotonic()
        self.hello_acked = False

    def tick(self, now: float) -> str:
        """Count the outstanding challenge as missed if unanswered, then send a new one."""
        if self._outstanding is not None:
            missed, self._outstanding = self._outstanding, None
            missed.missed = True
            self._misses += 1
            self._health = ev.MISSED
            self.log.changed()
            self.log.add(ev.MISSED, self.name, self.id, nonce=missed.nonce, consecutive=self._misses,
                         fault=self._misses >= self.owner.miss_threshold)
        nonce = new_nonce()
        record = ChallengeRecord(self.name, self.id, nonce, self.send(heartbeat.Challenge(nonce)), now)
        self._outstanding = record
        self._nonces[nonce] = record
        while len(self._nonces) > _REMEMBERED_NONCES:
            self._nonces.popitem(last=False)
        self.log.add_challenge(record)
        return nonce

    def run_timers(self, now: float, auto_challenge: bool) -> float:
        """Re-send hello, challenge when due; return the seconds until the next timer."""
        waits = [0.5]
        if not self.hello_acked:
            due = self.hello_sent_at + self.owner.hello_retry_s
            if now >= due:
                self.send_hello()
                due = now + self.owner.hello_retry_s
            waits.append(due - now)
        if self.registered and auto_challenge and self.interval_ms:
            interval = self.interval_ms / 1000.0
            if now >= self.next_challenge:
                self.tick(now)
                # Keep a fixed cadence; after a stall start afresh instead of bursting.
                self.next_challenge += interval
                if self.next_challenge <= now:
                    self.next_challenge = now + interval
            waits.append(self.next_challenge - now)
        return max(0.0, min(waits))

    def feed(self, data: bytes) -> None:
        """Handle received bytes: record what arrived and answer what needs an answer."""
        now = time.monotonic()
        stale_before = self.codec.stale_frames
        hello_requested = False
        for item in self.codec.feed(data):
            if isinstance(item, ProtocolError):
                self.owner.bad_frames += 1
                self.log.add(ev.ERROR, self.name, self.id, code=item.code, detail=item.detail, local=True)
                continue
            msg = item.message
            if isinstance(msg, base.HelloRequest):
                # A hello still in flight answers it; several queued requests need one hello.
                hello_requested = hello_requested or self.hello_acked or now - self.hello_sent_at >= HELLO_IN_FLIGHT_S
            elif isinstance(msg, base.HelloAck):
                if not self.hello_acked:
                    self.hello_acked = True
                    self.codec.version = msg.version
                    self.log.add(ev.HELLO_ACK, self.name, self.id, version=msg.version, agent=msg.agent)
            elif isinstance(msg, base.Error):
                self.log.add(ev.ERROR, self.name, self.id, code=msg.code, detail=msg.detail, ref_seq=msg.ref_seq)
            elif isinstance(msg, (heartbeat.Init, heartbeat.Response)) and not self.owner.heartbeat_enabled:
                self.send(base.Error(errors.NOT_ENABLED, 'heartbeat is not enabled for this instance', item.seq))
                self.log.add(ev.NOT_ENABLED, self.name, self.id, type=item.type, seq=item.seq)
            elif isinstance(msg, (sgm.Broadcast, sgm.StatusRequest)) and not self.owner.sgm_enabled:
                self.send(sgm.Nack(item.seq, sgm.NACK_NOT_ENABLED, 'server group messaging is not enabled'))
                self.log.add(ev.NOT_ENABLED, self.name, self.id, type=item.type, seq=item.seq)
            elif isinstance(msg, heartbeat.Init):
                self._on_init(msg, now)
            elif isinstance(msg, heartbeat.Response):
                self._on_response(msg, now)
            elif isinstance(msg, heartbeat.Exit):
                self.send(heartbeat.ExitAck())
                self.registered = False
                self._outstanding = None
                self.log.add(ev.EXITED, self.name, self.id, reason=msg.reason)
            elif isinstance(msg, sgm.Broadcast):
                self.owner.broadcasts.append((now, self.id, item.seq, msg.payload))
                self.log.add(ev.BROADCAST, self.name, self.id, payload=msg.payload, seq=item.seq)
            elif isinstance(msg, sgm.StatusRequest):
                self.log.add(ev.STATUS_REQUEST, self.name, self.id, seq=item.seq)
                if self.owner.status_nack:
                    self.send(sgm.Nack(item.seq, self.owner.status_nack, 'scripted host refuses status'))
                else:
                    self.send(sgm.StatusReply(item.seq, tuple(self.owner.members)))
        self.owner.stale_frames += self.codec.stale_frames - stale_before
        if hello_requested:
            self.send_hello()

    def _on_init(self, msg: heartbeat.Init, now: float) -> None:
        owner = self.owner
        interval = min(max(msg.interval_ms, owner.min_interval_ms, MIN_INTERVAL_MS),
                       owner.max_interval_ms, MAX_INTERVAL_MS)
        self.send(heartbeat.InitAck(interval, owner.miss_threshold))
        if not self.registered or interval != self.interval_ms:
            self.next_challenge = now + interval / 1000.0
        self.registered = True
        self.interval_ms = interval
        self.log.add(ev.REGISTERED, self.name, self.id, requested_ms=msg.interval_ms, interval_ms=interval,
                     miss_threshold=owner.miss_threshold)

    def _on_response(self, msg: heartbeat.Response, now: float) -> None:
        record = self._nonces.get(msg.nonce)
        if record is None or record.answered_at is not None:
            self.owner.unknown_nonces += 1
            self.log.add(ev.UNKNOWN_NONCE, self.name, self.id, nonce=msg.nonce, health=msg.health)
            return
        record.answered_at = now
        record.health = msg.health
        record.reason = msg.reason
        if record is not self._outstanding:
            record.late = True
            self.log.changed()
            return
        self._outstanding = None
        self._misses = 0
        if msg.health != self._health or (msg.health == heartbeat.UNHEALTHY and msg.reason != self._reason):
            self._health = msg.health
            self._reason = msg.reason
            kind = ev.HEALTHY if msg.health == heartbeat.HEALTHY else ev.UNHEALTHY
            self.log.add(kind, self.name, self.id, reason=msg.reason, nonce=msg.nonce)
        else:
            self.log.changed()
