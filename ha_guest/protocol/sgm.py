"""Server group messaging: broadcast, peer notifications, status, nack."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Tuple

from ha_guest.protocol import errors, fields
from ha_guest.protocol.constants import APP_SGM
from ha_guest.protocol.limits import MAX_BROADCAST_BYTES, MAX_GROUP_MEMBERS, MAX_REASON_CHARS, MAX_TOKEN_CHARS
from ha_guest.protocol.messages import GUEST_TO_HOST, HOST_TO_GUEST, Message, register

# Nack reasons; a guest must accept unknown ones.
NACK_NOT_ENABLED = "not_enabled"
NACK_NO_GROUP = "no_group"
NACK_RATE_LIMITED = "rate_limited"
NACK_UNAVAILABLE = "unavailable"
NACK_GROUP_TOO_LARGE = "group_too_large"


def _payload(data: Dict[str, Any]) -> bytes:
    text = fields.require_str(data, "payload", (MAX_BROADCAST_BYTES + 2) // 3 * 4, allow_empty=True)
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise errors.ProtocolError(errors.INVALID_MESSAGE, "payload is not base64: %s" % exc) from None
    if len(raw) > MAX_BROADCAST_BYTES:
        raise errors.ProtocolError(errors.INVALID_MESSAGE, "payload larger than %d bytes" % MAX_BROADCAST_BYTES)
    return raw


def _encode_payload(payload: bytes) -> str:
    return base64.b64encode(payload).decode("ascii")


@register
@dataclass(frozen=True)
class Broadcast(Message):
    """Guest -> host: a datagram for every other member of the server group."""

    APP: ClassVar[str] = APP_SGM
    TYPE: ClassVar[str] = "broadcast"
    DIRECTION: ClassVar[str] = GUEST_TO_HOST

    payload: bytes = b""

    def __post_init__(self) -> None:
        if len(self.payload) > MAX_BROADCAST_BYTES:
            raise errors.ProtocolError(errors.INVALID_MESSAGE, "payload larger than %d bytes" % MAX_BROADCAST_BYTES)

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "Broadcast":
        return cls(_payload(data))

    def to_data(self) -> Dict[str, Any]:
        return {"payload": _encode_payload(self.payload)}


@register
@dataclass(frozen=True)
class BroadcastDeliver(Message):
    """Host -> guest: a peer's broadcast; the sender is stamped by the host."""

    APP: ClassVar[str] = APP_SGM
    TYPE: ClassVar[str] = "broadcast_deliver"
    DIRECTION: ClassVar[str] = HOST_TO_GUEST

    sender: str = ""
    payload: bytes = b""

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "BroadcastDeliver":
        return cls(fields.require_uuid(data, "sender"), _payload(data))

    def to_data(self) -> Dict[str, Any]:
        return {"sender": self.sender, "payload": _encode_payload(self.payload)}


@register
@dataclass(frozen=True)
class Notification(Message):
    """Host -> guest: a peer's Nova state changed."""

    APP: ClassVar[str] = APP_SGM
    TYPE: ClassVar[str] = "notification"
    DIRECTION: ClassVar[str] = HOST_TO_GUEST

    member: str = ""
    event: str = ""
    state: str = ""
    power_state: str = ""

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "Notification":
        return cls(
            fields.require_uuid(data, "member"),
            fields.require_token(data, "event", MAX_TOKEN_CHARS),
            fields.require_token(data, "state", MAX_TOKEN_CHARS),
            fields.optional_token(data, "power_state", MAX_TOKEN_CHARS),
        )

    def to_data(self) -> Dict[str, Any]:
        return {"member": self.member, "event": self.event, "state": self.state, "power_state": self.power_state}


@register
@dataclass(frozen=True)
class StatusRequest(Message):
    """Guest -> host: asks for the state of every member of its group."""

    APP: ClassVar[str] = APP_SGM
    TYPE: ClassVar[str] = "status_request"
    DIRECTION: ClassVar[str] = GUEST_TO_HOST


@dataclass(frozen=True)
class MemberStatus:
    """One member's Nova state as reported in a status reply."""

    uuid: str
    state: str
    power_state: str = ""
    is_self: bool = False

    @classmethod
    def from_data(cls, data: Any) -> "MemberStatus":
        """Validate one entry of the members list."""
        if not isinstance(data, dict):
            raise errors.ProtocolError(errors.INVALID_MESSAGE, "members entries must be objects")
        return cls(
            fields.require_uuid(data, "uuid"),
            fields.require_token(data, "state", MAX_TOKEN_CHARS),
            fields.optional_token(data, "power_state", MAX_TOKEN_CHARS),
            fields.require_bool(data, "self"),
        )

    def to_data(self) -> Dict[str, Any]:
        """Return the JSON object of this entry."""
        return {"uuid": self.uuid, "state": self.state, "power_state": self.power_state, "self": self.is_self}


@register
@dataclass(frozen=True)
class StatusReply(Message):
    """Host -> guest: every member's state, the asking guest included."""

    APP: ClassVar[str] = APP_SGM
    TYPE: ClassVar[str] = "status_reply"
    DIRECTION: ClassVar[str] = HOST_TO_GUEST

    ref_seq: int = 0
    members: Tuple[MemberStatus, ...] = ()

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "StatusReply":
        members = data.get("members")
        if not isinstance(members, list):
            raise errors.ProtocolError(errors.INVALID_MESSAGE, "members must be a list")
        if len(members) > MAX_GROUP_MEMBERS:
            raise errors.ProtocolError(errors.INVALID_MESSAGE, "more than %d members" % MAX_GROUP_MEMBERS)
        return cls(fields.require_int(data, "ref_seq"), tuple(MemberStatus.from_data(m) for m in members))

    def to_data(self) -> Dict[str, Any]:
        return {"ref_seq": self.ref_seq, "members": [m.to_data() for m in self.members]}


@register
@dataclass(frozen=True)
class Nack(Message):
    """Host -> guest: an SGM request could not be served."""

    APP: ClassVar[str] = APP_SGM
    TYPE: ClassVar[str] = "nack"
    DIRECTION: ClassVar[str] = HOST_TO_GUEST

    ref_seq: int = 0
    reason: str = NACK_UNAVAILABLE
    detail: str = ""

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "Nack":
        return cls(
            fields.require_int(data, "ref_seq"),
            fields.require_token(data, "reason", MAX_TOKEN_CHARS),
            fields.optional_str(data, "detail", MAX_REASON_CHARS),
        )

    def to_data(self) -> Dict[str, Any]:
        return {"ref_seq": self.ref_seq, "reason": self.reason, "detail": self.detail}


def member_status(uuid: str, state: str, power_state: str = "", is_self: bool = False) -> MemberStatus:
    """Build a validated MemberStatus (used by the host side)."""
    return MemberStatus.from_data({"uuid": uuid, "state": state, "power_state": power_state, "self": is_self})

