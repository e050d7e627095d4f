"""Heartbeat application: registration, challenges, health answers and exit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict

from ha_guest.protocol import fields
from ha_guest.protocol.constants import APP_HEARTBEAT
from ha_guest.protocol.limits import MAX_INTERVAL_MS, MAX_REASON_CHARS, MAX_TOKEN_CHARS, MIN_INTERVAL_MS
from ha_guest.protocol.messages import GUEST_TO_HOST, HOST_TO_GUEST, Message, register

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
HEALTH_VALUES = frozenset([HEALTHY, UNHEALTHY])

#: Most consecutive misses a host may allow before it declares a fault.
MAX_MISS_THRESHOLD = 10


@register
@dataclass(frozen=True)
class Init(Message):
    """Guest -> host: registers for heartbeating with the wanted interval."""

    APP: ClassVar[str] = APP_HEARTBEAT
    TYPE: ClassVar[str] = "init"
    DIRECTION: ClassVar[str] = GUEST_TO_HOST

    interval_ms: int = 1000

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "Init":
        return cls(fields.require_int(data, "interval_ms", MIN_INTERVAL_MS, MAX_INTERVAL_MS))

    def to_data(self) -> Dict[str, Any]:
        return {"interval_ms": self.interval_ms}


@register
@dataclass(frozen=True)
class InitAck(Message):
    """Host -> guest: monitoring starts with this (possibly clamped) interval."""

    APP: ClassVar[str] = APP_HEARTBEAT
    TYPE: ClassVar[str] = "init_ack"
    DIRECTION: ClassVar[str] = HOST_TO_GUEST

    interval_ms: int = 1000
    miss_threshold: int = 1

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "InitAck":
        return cls(
            fields.require_int(data, "interval_ms", MIN_INTERVAL_MS, MAX_INTERVAL_MS),
            fields.require_int(data, "miss_threshold", 1, MAX_MISS_THRESHOLD),
        )

    def to_data(self) -> Dict[str, Any]:
        return {"interval_ms": self.interval_ms, "miss_threshold": self.miss_threshold}


@register
@dataclass(frozen=True)
class Challenge(Message):
    """Host -> guest: asks for a health answer to this nonce within the interval."""

    APP: ClassVar[str] = APP_HEARTBEAT
    TYPE: ClassVar[str] = "challenge"
    DIRECTION: ClassVar[str] = HOST_TO_GUEST

    nonce: str = ""

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "Challenge":
        return cls(fields.require_token(data, "nonce", MAX_TOKEN_CHARS))

    def to_data(self) -> Dict[str, Any]:
        return {"nonce": self.nonce}


@register
@dataclass(frozen=True)
class Response(Message):
    """Guest -> host: answers a challenge with the guest's health."""

    APP: ClassVar[str] = APP_HEARTBEAT
    TYPE: ClassVar[str] = "response"
    DIRECTION: ClassVar[str] = GUEST_TO_HOST

    nonce: str = ""
    health: str = HEALTHY
    reason: str = ""

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "Response":
        return cls(
            fields.require_token(data, "nonce", MAX_TOKEN_CHARS),
            fields.require_choice(data, "health", HEALTH_VALUES),
            fields.optional_str(data, "reason", MAX_REASON_CHARS),
        )

    def to_data(self) -> Dict[str, Any]:
        return {"nonce": self.nonce, "health": self.health, "reason": self.reason}


@register
@dataclass(frozen=True)
class Exit(Message):
    """Guest -> host: ends monitoring on purpose; never a fault."""

    APP: ClassVar[str] = APP_HEARTBEAT
    TYPE: ClassVar[str] = "exit"
    DIRECTION: ClassVar[str] = GUEST_TO_HOST

    reason: str = ""

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "Exit":
        return cls(fields.optional_str(data, "reason", MAX_REASON_CHARS))

    def to_data(self) -> Dict[str, Any]:
        return {"reason": self.reason}


@register
@dataclass(frozen=True)
class ExitAck(Message):
    """Host -> guest: monitoring has stopped."""

    APP: ClassVar[str] = APP_HEARTBEAT
    TYPE: ClassVar[str] = "exit_ack"
    DIRECTION: ClassVar[str] = HOST_TO_GUEST
