"""Message base class, the registry of message types, and base-layer messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional, Tuple, Type, TypeVar

from ha_guest.protocol import errors, fields, versioning
from ha_guest.protocol.constants import APP_BASE
from ha_guest.protocol.limits import MAX_REASON_CHARS, MAX_TOKEN_CHARS

HOST_TO_GUEST = "host_to_guest"
GUEST_TO_HOST = "guest_to_host"
BOTH_WAYS = "both"


class Message:
    """A typed message; subclasses are frozen dataclasses registered by type."""

    APP: ClassVar[str]
    TYPE: ClassVar[str]
    DIRECTION: ClassVar[str]

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "Message":
        """Validate the envelope's data object and build the message."""
        return cls()

    def to_data(self) -> Dict[str, Any]:
        """Return the JSON data object of this message."""
        return {}


M = TypeVar("M", bound=Type[Message])
_REGISTRY: Dict[Tuple[str, str], Type[Message]] = {}


def register(cls: M) -> M:
    """Class decorator that makes a message type known to the decoder."""
    key = (cls.APP, cls.TYPE)
    if key in _REGISTRY:
        raise ValueError("message type %s/%s registered twice" % key)
    _REGISTRY[key] = cls
    return cls


def lookup(app: str, type_: str) -> Optional[Type[Message]]:
    """Return the message class for an application and type, if known."""
    return _REGISTRY.get((app, type_))


def registered_types() -> Dict[Tuple[str, str], Type[Message]]:
    """Return a copy of the registry (for docs and tests)."""
    return dict(_REGISTRY)


@register
@dataclass(frozen=True)
class Hello(Message):
    """Host -> guest: starts a session and offers a range of versions."""

    APP: ClassVar[str] = APP_BASE
    TYPE: ClassVar[str] = "hello"
    DIRECTION: ClassVar[str] = HOST_TO_GUEST

    version_min: int = versioning.MIN_VERSION
    version_max: int = versioning.MAX_VERSION

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "Hello":
        low = fields.require_int(data, "version_min", 1, 65535)
        high = fields.require_int(data, "version_max", 1, 65535)
        if low > high:
            raise errors.ProtocolError(errors.INVALID_MESSAGE, "version_min is above version_max")
        return cls(low, high)

    def to_data(self) -> Dict[str, Any]:
        return {"version_min": self.version_min, "version_max": self.version_max}


@register
@dataclass(frozen=True)
class HelloAck(Message):
    """Guest -> host: accepts the session with the version it picked."""

    APP: ClassVar[str] = APP_BASE
    TYPE: ClassVar[str] = "hello_ack"
    DIRECTION: ClassVar[str] = GUEST_TO_HOST

    version: int = versioning.MAX_VERSION
    agent: str = ""

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "HelloAck":
        return cls(
            fields.require_int(data, "version", 1, 65535),
            fields.optional_str(data, "agent", MAX_TOKEN_CHARS),
        )

    def to_data(self) -> Dict[str, Any]:
        return {"version": self.version, "agent": self.agent}


@register
@dataclass(frozen=True)
class HelloRequest(Message):
    """Guest -> host: asks for a hello, e.g. after the guest agent restarted."""

    APP: ClassVar[str] = APP_BASE
    TYPE: ClassVar[str] = "hello_request"
    DIRECTION: ClassVar[str] = GUEST_TO_HOST


@register
@dataclass(frozen=True)
class Error(Message):
    """Either way: reports a frame the sender could not accept."""

    APP: ClassVar[str] = APP_BASE
    TYPE: ClassVar[str] = "error"
    DIRECTION: ClassVar[str] = BOTH_WAYS

    code: str = errors.INVALID_MESSAGE
    detail: str = ""
    ref_seq: Optional[int] = None

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "Error":
        return cls(
            fields.require_token(data, "code", MAX_TOKEN_CHARS),
            fields.optional_str(data, "detail", MAX_REASON_CHARS),
            fields.optional_int(data, "ref_seq"),
        )

    def to_data(self) -> Dict[str, Any]:
        return {"code": self.code, "detail": self.detail, "ref_seq": self.ref_seq}

    @classmethod
    def from_exception(cls, exc: errors.ProtocolError) -> "Error":
        """Build the error reply for a protocol error, detail truncated to the limit."""
        return cls(exc.code, exc.detail[:MAX_REASON_CHARS], exc.ref_seq)
