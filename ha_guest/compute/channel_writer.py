"""The writing half of a channel: encoding what the host sends, the write buffer bound, error replies.

GuestChannel (channel.py) builds on it. Everything here runs on the
compute agent's event loop. A guest that stops reading has its connection
dropped once more than ``write_buffer_limit`` bytes wait (it reconnects, and
its misses still count); server group messaging deliveries give way well
before that, so heartbeats come first.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Optional

from ha_guest.compute import fastpath
from ha_guest.compute.connection import ReconnectingConnection
from ha_guest.compute.log_gate import LogGate
from ha_guest.protocol import errors, limits, versioning
from ha_guest.protocol.codec import HOST, ChannelCodec
from ha_guest.protocol.constants import APP_BASE
from ha_guest.protocol.envelope import encode_message
from ha_guest.protocol.messages import Error, Message
from ha_guest.protocol.ratelimit import TokenBucket


@dataclass(frozen=True)
class ChannelSettings:
    """Per-channel limits and timers, from the [compute] options."""

    miss_threshold: int = 1
    hello_retry_s: float = 1.0
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 2.0
    channel_loss_grace_s: float = 0.5
    guest_frame_rate: float = limits.GUEST_FRAME_RATE  # lines, charged before parsing (guest_budget.py)
    guest_frame_burst: int = limits.GUEST_FRAME_BURST
    guest_byte_rate: int = 65536
    guest_byte_burst: int = 131072
    guest_pause_s: float = 0.1
    write_buffer_limit: int = 65536


class ChannelWriter(ReconnectingConnection):
    """Sends the host's frames of the current session on one channel."""

    def __init__(self, loop: asyncio.AbstractEventLoop, instance_uuid: str, path: str, settings: ChannelSettings,
                 log: LogGate) -> None:
        super().__init__(loop, instance_uuid, path, settings.reconnect_min_s, settings.reconnect_max_s,
                         {"connections": 0, "connect_failures": 0, "frames": 0, "errors_received": 0,
                          "protocol_errors": 0, "error_replies": 0, "error_replies_suppressed": 0,
                          "rate_limited": 0, "rate_limited_lines": 0, "bytes_dropped": 0, "paused": 0, "overflows": 0,
                          "challenges_unsent": 0}, log)
        self.instance_uuid = instance_uuid
        self.settings = settings
        self.codec = ChannelCodec(HOST)
        self._challenge_frame = b""
        self._session_bytes = b""  # session and version as the read fast path compares them
        self._version_bytes = b""
        self._error_replies = TokenBucket(limits.ERROR_REPLY_RATE, limits.ERROR_REPLY_BURST, loop.time)

    @property
    def session(self) -> Optional[str]:
        """The current session id, None while disconnected."""
        return self.codec.session if self.transport is not None else None

    def send_challenge(self, nonce: str) -> None:
        """Write one challenge (called by the monitor from the tick); dropped while disconnected."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self.counters["challenges_unsent"] += 1
            return
        transport.write(self._challenge_frame % (self.codec.next_seq(), nonce.encode("ascii")))
        if transport.get_write_buffer_size() > self.settings.write_buffer_limit:
            self._overflow(transport)

    def _format_session_frames(self) -> None:
        version, session = self.codec.version, str(self.codec.session)
        self._challenge_frame = fastpath.challenge_template(version, session)
        self._session_bytes = session.encode("ascii")
        self._version_bytes = b"%d" % version

    def send(self, message: Message) -> None:
        """Write one message of the current session, if connected."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        version = versioning.BASE_VERSION if message.APP == APP_BASE else self.codec.version
        transport.write(encode_message(message, self.codec.next_seq(), self.codec.session, version))
        if transport.get_write_buffer_size() > self.settings.write_buffer_limit:
            self._overflow(transport)

    def send_deliver(self, data: bytes) -> bool:
        """Write a broadcast_deliver with pre-encoded ``data``; False (not written) while disconnected or
        while more than half the write buffer limit waits: SGM is best effort, heartbeats come first."""
        transport, session = self.transport, self.codec.session
        if transport is None or transport.is_closing() or session is None \
                or transport.get_write_buffer_size() > self.settings.write_buffer_limit // 2:
            return False
        transport.write(fastpath.broadcast_deliver_frame(self.codec.version, self.codec.next_seq(), session, data))
        return True

    def _overflow(self, transport: asyncio.Transport) -> None:
        self.counters["overflows"] += 1
        self._log.log(logging.WARNING, "%s: guest is not reading (more than %d bytes unsent); reconnecting",
                      self.instance_uuid, self.settings.write_buffer_limit)
        transport.abort()

    def _reply_error(self, exc: errors.ProtocolError) -> None:
        if self._error_replies.allow():
            self.counters["error_replies"] += 1
            self.send(Error.from_exception(exc))
        else:
            self.counters["error_replies_suppressed"] += 1
