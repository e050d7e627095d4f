"""The guest agent's local API: newline-delimited JSON over a UNIX socket.

Requests are one JSON object per line with an ``op``; every request gets one
reply line ``{"ok": true, ...}`` or ``{"ok": false, "error": CODE, "detail": TEXT}``.
A ``listen`` request keeps the connection open and streams event lines.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from ha_guest.protocol import fields
from ha_guest.protocol.errors import ProtocolError
from ha_guest.protocol.limits import MAX_BROADCAST_BYTES, MAX_REASON_CHARS, MAX_TOKEN_CHARS
from ha_guest.protocol.sgm import Broadcast

#: Default path of the agent's local socket inside the guest.
DEFAULT_SOCKET = "/run/ha-guest/agent.sock"

#: Longest request or event line; a base64 broadcast of 3050 bytes fits easily.
MAX_LINE_BYTES = 16384

#: Most clients connected at once; more are refused with an error line.
MAX_CLIENTS = 64

#: Events queued for one slow listener before the oldest are dropped.
MAX_LISTENER_BACKLOG = 256

#: Longest expiry an application may give a health report, in seconds.
MAX_EXPIRY_S = 86400.0

OP_REPORT = "report"
OP_CLEAR = "clear"
OP_AGENT_STATUS = "agent_status"
OP_BROADCAST = "broadcast"
OP_GROUP_STATUS = "group_status"
OP_LISTEN = "listen"
OPS = frozenset([OP_REPORT, OP_CLEAR, OP_AGENT_STATUS, OP_BROADCAST, OP_GROUP_STATUS, OP_LISTEN])

# Error codes of replies.
E_BAD_REQUEST = "bad_request"
E_TOO_LARGE = "too_large"
E_HOST_UNAVAILABLE = "host_unavailable"
E_TIMEOUT = "timeout"
E_NACK = "nack"
E_BUSY = "busy"

# Events streamed to listeners.
EV_BROADCAST = "broadcast"
EV_NOTIFICATION = "notification"
EV_DROPPED = "dropped"


class RequestError(Exception):
    """A request the agent refuses; becomes an error reply."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__("%s: %s" % (code, detail))
        self.code = code
        self.detail = detail


def dumps_line(obj: Dict[str, Any]) -> bytes:
    """Serialise one reply, request or event as a newline-terminated line."""
    return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"


def ok(**values: Any) -> Dict[str, Any]:
    """Build a success reply."""
    reply: Dict[str, Any] = {"ok": True}
    reply.update(values)
    return reply


def error(code: str, detail: str) -> Dict[str, Any]:
    """Build an error reply."""
    return {"ok": False, "error": code, "detail": detail[:MAX_REASON_CHARS]}


def parse_request(line: bytes) -> Dict[str, Any]:
    """Validate one request line and return it normalised; raise RequestError."""
    if len(line) > MAX_LINE_BYTES:
        raise RequestError(E_TOO_LARGE, "request longer than %d bytes" % MAX_LINE_BYTES)
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RequestError(E_BAD_REQUEST, "request is not a UTF-8 JSON object") from None
    if not isinstance(obj, dict):
        raise RequestError(E_BAD_REQUEST, "request is not a JSON object")
    op = obj.get("op")
    if op not in OPS:
        raise RequestError(E_BAD_REQUEST, "op must be one of %s" % ", ".join(sorted(OPS)))
    try:
        return _VALIDATORS[op](obj)
    except ProtocolError as exc:
        raise RequestError(E_BAD_REQUEST, exc.detail) from None


def _report(obj: Dict[str, Any]) -> Dict[str, Any]:
    health = fields.require_choice(obj, "health", ("healthy", "unhealthy"))
    expires = obj.get("expires_in_s")
    if expires is not None:
        if isinstance(expires, bool) or not isinstance(expires, (int, float)) or not 0 < expires <= MAX_EXPIRY_S:
            raise RequestError(E_BAD_REQUEST, "expires_in_s must be a number in (0, %d]" % MAX_EXPIRY_S)
        expires = float(expires)
    return {
        "op": OP_REPORT,
        "source": fields.require_token(obj, "source", MAX_TOKEN_CHARS),
        "health": health,
        "reason": fields.optional_str(obj, "reason", MAX_REASON_CHARS),
        "expires_in_s": expires,
    }


def _clear(obj: Dict[str, Any]) -> Dict[str, Any]:
    return {"op": OP_CLEAR, "source": fields.require_token(obj, "source", MAX_TOKEN_CHARS)}


def _broadcast(obj: Dict[str, Any]) -> Dict[str, Any]:
    # Reuse the wire validation so the local API and the wire agree on limits.
    try:
        message = Broadcast.from_data({"payload": obj.get("payload")})
    except ProtocolError as exc:
        raise RequestError(E_TOO_LARGE if "larger" in exc.detail else E_BAD_REQUEST, exc.detail) from None
    return {"op": OP_BROADCAST, "payload": message.payload}


def _timeout(obj: Dict[str, Any], default: float) -> float:
    value: Optional[Any] = obj.get("timeout_s")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 30:
        raise RequestError(E_BAD_REQUEST, "timeout_s must be a number in (0, 30]")
    return float(value)


def _group_status(obj: Dict[str, Any]) -> Dict[str, Any]:
    return {"op": OP_GROUP_STATUS, "timeout_s": _timeout(obj, 2.0)}


def _plain(op: str) -> Any:
    return lambda obj: {"op": op}


_VALIDATORS = {
    OP_REPORT: _report,
    OP_CLEAR: _clear,
    OP_AGENT_STATUS: _plain(OP_AGENT_STATUS),
    OP_BROADCAST: _broadcast,
    OP_GROUP_STATUS: _group_status,
    OP_LISTEN: _plain(OP_LISTEN),
}

assert set(_VALIDATORS) == OPS
assert MAX_LINE_BYTES > (MAX_BROADCAST_BYTES + 2) // 3 * 4 + 100
