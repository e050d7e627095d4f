"""The base-layer envelope: version, application, type, sequence, session, data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ha_guest.protocol import errors, fields, versioning
from ha_guest.protocol.framing import encode_frame
from ha_guest.protocol.limits import MAX_FRAME_BYTES, MAX_TOKEN_CHARS
from ha_guest.protocol.messages import Message, lookup

_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# Cheap pre-check for \uD800-\uDFFF escapes; only then is the frame re-encoded
# to find lone surrogates, which could not be written back as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are Python extensions, not JSON (RFC 8259).
    raise ValueError("%s is not a JSON value" % name)


@dataclass(frozen=True)
class Envelope:
    """One decoded frame: the typed message and the envelope fields around it."""

    message: Message
    seq: int
    session: Optional[str]
    version: int = versioning.BASE_VERSION

    @property
    def app(self) -> str:
        """The application of the carried message."""
        return self.message.APP

    @property
    def type(self) -> str:
        """The type of the carried message."""
        return self.message.TYPE


def _seq_of(obj: Dict[str, Any]) -> Optional[int]:
    seq = obj.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= fields.MAX_SAFE_INT:
        return seq
    return None


def decode(line: bytes, supported_min: int = versioning.MIN_VERSION,
           supported_max: int = versioning.MAX_VERSION) -> Envelope:
    """Decode one frame (without its newline) or raise ProtocolError."""
    if len(line) > MAX_FRAME_BYTES:
        raise errors.ProtocolError(errors.FRAME_TOO_LARGE, "frame longer than %d bytes" % MAX_FRAME_BYTES)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.ProtocolError(errors.INVALID_UTF8, "frame is not UTF-8 at byte %d" % exc.start) from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise errors.ProtocolError(errors.INVALID_JSON, "frame is not JSON: %s" % exc) from None
    except RecursionError:
        raise errors.ProtocolError(errors.INVALID_JSON, "frame nests too deeply") from None
    if _SURROGATE_ESCAPE.search(text) is not None:
        try:
            _DUMPS(obj).encode("utf-8")
        except UnicodeEncodeError:
            raise errors.ProtocolError(errors.INVALID_JSON, "frame has a lone surrogate escape") from None
        except RecursionError:
            raise errors.ProtocolError(errors.INVALID_JSON, "frame nests too deeply") from None
    if not isinstance(obj, dict):
        raise errors.ProtocolError(errors.INVALID_ENVELOPE, "frame is not a JSON object")
    ref = _seq_of(obj)
    try:
        return _decode_object(obj, ref, supported_min, supported_max)
    except errors.ProtocolError as exc:
        if exc.ref_seq is None and ref is not None:
            exc.ref_seq = ref
        raise


def _decode_object(obj: Dict[str, Any], ref: Optional[int], supported_min: int, supported_max: int) -> Envelope:
    version = obj.get("v")
    if isinstance(version, bool) or not isinstance(version, int):
        raise errors.ProtocolError(errors.INVALID_ENVELOPE, "v must be an integer")
    if not versioning.is_supported(version, supported_min, supported_max):
        raise errors.ProtocolError(
            errors.UNSUPPORTED_VERSION, "version %d not in %d-%d" % (version, supported_min, supported_max)
        )
    if ref is None:
        raise errors.ProtocolError(errors.INVALID_ENVELOPE, "seq must be a non-negative integer")
    app = obj.get("app")
    type_ = obj.get("type")
    if not isinstance(app, str) or not isinstance(type_, str):
        raise errors.ProtocolError(errors.INVALID_ENVELOPE, "app and type must be strings")
    session = obj.get("session")
    if session is not None:
        if not isinstance(session, str) or not session or len(session) > MAX_TOKEN_CHARS:
            raise errors.ProtocolError(errors.INVALID_ENVELOPE, "session must be a short string or null")
    data = obj.get("data", {})
    if not isinstance(data, dict):
        raise errors.ProtocolError(errors.INVALID_ENVELOPE, "data must be an object")
    cls = lookup(app, type_)
    if cls is None:
        raise errors.ProtocolError(errors.UNKNOWN_TYPE, "unknown message %s/%s" % (app[:32], type_[:32]))
    return Envelope(cls.from_data(data), ref, session, version)


def encode(envelope: Envelope) -> bytes:
    """Serialise an envelope into one newline-terminated frame."""
    obj = {
        "v": envelope.version,
        "app": envelope.app,
        "type": envelope.type,
        "seq": envelope.seq,
        "session": envelope.session,
        "data": envelope.message.to_data(),
    }
    return encode_frame(_DUMPS(obj).encode("utf-8"))


def encode_message(message: Message, seq: int, session: Optional[str],
                   version: int = versioning.BASE_VERSION) -> bytes:
    """Serialise a message with the given envelope fields into one frame."""
    return encode(Envelope(message, seq, session, version))
