"""Error codes of the wire protocol and the exception that carries them."""

from __future__ import annotations

from typing import Optional

# Error codes as sent in base/error frames; a receiver must accept unknown codes.
FRAME_TOO_LARGE = "frame_too_large"
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
INVALID_ENVELOPE = "invalid_envelope"
UNSUPPORTED_VERSION = "unsupported_version"
UNKNOWN_TYPE = "unknown_type"
INVALID_MESSAGE = "invalid_message"
UNEXPECTED_MESSAGE = "unexpected_message"
RATE_LIMITED = "rate_limited"
NOT_REGISTERED = "not_registered"
# The frame's feature is off for this instance (heartbeat init/response from an SGM-only one).
NOT_ENABLED = "not_enabled"

ERROR_CODES = frozenset(
    [
        FRAME_TOO_LARGE,
        INVALID_UTF8,
        INVALID_JSON,
        INVALID_ENVELOPE,
        UNSUPPORTED_VERSION,
        UNKNOWN_TYPE,
        INVALID_MESSAGE,
        UNEXPECTED_MESSAGE,
        RATE_LIMITED,
        NOT_REGISTERED,
        NOT_ENABLED,
    ]
)


class ProtocolError(Exception):
    """A frame or message that breaks the protocol; carries the error code."""

    def __init__(self, code: str, detail: str, ref_seq: Optional[int] = None) -> None:
        super().__init__("%s: %s" % (code, detail))
        self.code = code
        self.detail = detail
        self.ref_seq = ref_seq

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ProtocolError)
            and (self.code, self.detail, self.ref_seq) == (other.code, other.detail, other.ref_seq)
        )

    def __hash__(self) -> int:
        return hash((self.code, self.detail, self.ref_seq))
