"""Per-connection protocol state: framing, decoding, sessions and sequence numbers."""

from __future__ import annotations

import secrets
from typing import Dict, List, Optional, Union

from ha_guest.protocol import envelope as envelope_mod
from ha_guest.protocol import errors, versioning
from ha_guest.protocol.constants import APP_BASE
from ha_guest.protocol.envelope import Envelope
from ha_guest.protocol.framing import FrameDecoder
from ha_guest.protocol.limits import MAX_FRAME_BYTES
from ha_guest.protocol.messages import GUEST_TO_HOST, HOST_TO_GUEST, Error, Hello, HelloRequest, Message

HOST = "host"
GUEST = "guest"

#: What feed() returns for each frame: a message to act on, or an error to report.
Received = Union[Envelope, errors.ProtocolError]


def new_session_id() -> str:
    """Return a fresh random session id (64 bits, hex)."""
    return secrets.token_hex(8)


def new_nonce() -> str:
    """Return a fresh random challenge nonce (64 bits, hex)."""
    return secrets.token_hex(8)


class ChannelCodec:
    """Turn a byte stream into messages of the current session and back.

    The host starts a session per connection and stamps its id on every frame;
    the guest adopts the session of the newest hello. Frames of any other
    session are leftovers that QEMU queued across a reconnect: they are
    counted and dropped without an error reply, which would only add noise.
    """

    def __init__(self, role: str, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if role not in (HOST, GUEST):
            raise ValueError("role must be host or guest")
        self.role = role
        self.decoder = FrameDecoder(max_frame_bytes)
        self.session: Optional[str] = None
        self.version = versioning.BASE_VERSION
        self._seq = 0
        self.stale_frames = 0
        self.error_counts: Dict[str, int] = {}
        # Messages this side may receive; the others are the peer's to send.
        self._forbidden = HOST_TO_GUEST if role == HOST else GUEST_TO_HOST

    def start_session(self) -> str:
        """Host side: begin a new session (a new connection) and return its id."""
        self.session = new_session_id()
        self.version = versioning.BASE_VERSION
        self._seq = 0
        self.decoder.reset()
        return self.session

    def reset(self) -> None:
        """Forget session and partial input, e.g. after the transport closed."""
        self.session = None
        self.version = versioning.BASE_VERSION
        self.decoder.reset()

    def next_seq(self) -> int:
        """Return the sequence number of the next frame this side sends."""
        self._seq += 1
        return self._seq

    def encode(self, message: Message) -> bytes:
        """Serialise a message of the current session as one frame."""
        version = versioning.BASE_VERSION if message.APP == APP_BASE else self.version
        return envelope_mod.encode_message(message, self.next_seq(), self.session, version)

    def feed(self, data: bytes) -> List[Received]:
        """Consume bytes; return the current session's messages and any errors."""
        out: List[Received] = []
        for item in self.decoder.feed(data):
            if isinstance(item, errors.ProtocolError):
                self._count(item)
                out.append(item)
                continue
            try:
                env = envelope_mod.decode(item)
            except errors.ProtocolError as exc:
                self._count(exc)
                out.append(exc)
                continue
            if env.message.DIRECTION == self._forbidden:
                wrong_way = errors.ProtocolError(
                    errors.UNEXPECTED_MESSAGE, "%s/%s is not sent by the %s" % (env.app, env.type, self._peer()),
                    env.seq,
                )
                self._count(wrong_way)
                out.append(wrong_way)
                continue
            if self._accept_session(env):
                out.append(env)
            else:
                self.stale_frames += 1
        return out

    def _accept_session(self, env: Envelope) -> bool:
        if self.role == GUEST and isinstance(env.message, Hello):
            if env.session is None:
                return False
            # The newest hello wins: older ones were queued for a host that left.
            # Each hello is negotiated afresh, so base version until hello_ack.
            self.session = env.session
            self.version = versioning.BASE_VERSION
            return True
        if env.session is not None:
            return env.session == self.session
        # Only a guest that has no session yet may speak without one.
        return self.role == HOST and isinstance(env.message, (HelloRequest, Error))

    def _peer(self) -> str:
        return GUEST if self.role == HOST else HOST

    def _count(self, exc: errors.ProtocolError) -> None:
        self.error_counts[exc.code] = self.error_counts.get(exc.code, 0) + 1

    @property
    def errors_total(self) -> int:
        """Frames rejected since this codec was made."""
        return sum(self.error_counts.values())
