"""The ha_guest wire protocol: framing, envelope, messages and limits.

Standard library only and Python 3.8 syntax: the guest side imports it too.
"""

from __future__ import annotations

from ha_guest.protocol import heartbeat, sgm  # noqa: F401  (registers the message types)
from ha_guest.protocol.codec import GUEST, HOST, ChannelCodec, new_nonce, new_session_id
from ha_guest.protocol.envelope import Envelope, decode, encode, encode_message
from ha_guest.protocol.errors import ProtocolError
from ha_guest.protocol.framing import FrameDecoder, encode_frame
from ha_guest.protocol.messages import Error, Hello, HelloAck, HelloRequest, Message, lookup, registered_types
from ha_guest.protocol.versioning import negotiate

__all__ = [
    "GUEST",
    "HOST",
    "ChannelCodec",
    "Envelope",
    "Error",
    "FrameDecoder",
    "Hello",
    "HelloAck",
    "HelloRequest",
    "Message",
    "ProtocolError",
    "decode",
    "encode",
    "encode_frame",
    "encode_message",
    "heartbeat",
    "lookup",
    "negotiate",
    "new_nonce",
    "new_session_id",
    "registered_types",
    "sgm",
]
