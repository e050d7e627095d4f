"""Validation helpers that turn untrusted JSON values into typed fields."""

from __future__ import annotations

import re
from typing import Any, Collection, Dict, Optional

from ha_guest.protocol import errors

# Tokens (nonces, sessions, names) are short printable ASCII without spaces.
# \Z, not $: $ also matches before a trailing newline.
TOKEN_RE = re.compile(r"^[A-Za-z0-9._:@-]+\Z")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\Z")
MAX_SAFE_INT = 2**53 - 1  # what every JSON implementation represents exactly


def _invalid(name: str, problem: str) -> errors.ProtocolError:
    return errors.ProtocolError(errors.INVALID_MESSAGE, "%s %s" % (name, problem))


def require_int(data: Dict[str, Any], name: str, minimum: int = 0, maximum: int = MAX_SAFE_INT) -> int:
    """Return an integer field within [minimum, maximum]; bools are rejected."""
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(name, "must be an integer")
    if not minimum <= value <= maximum:
        raise _invalid(name, "must be between %d and %d" % (minimum, maximum))
    return value


def optional_int(data: Dict[str, Any], name: str, minimum: int = 0, maximum: int = MAX_SAFE_INT) -> Optional[int]:
    """Return an optional integer field (absent or null gives None)."""
    if data.get(name) is None:
        return None
    return require_int(data, name, minimum, maximum)


def require_str(data: Dict[str, Any], name: str, max_chars: int, allow_empty: bool = False) -> str:
    """Return a string field of at most max_chars characters."""
    value = data.get(name)
    if not isinstance(value, str):
        raise _invalid(name, "must be a string")
    if len(value) > max_chars:
        raise _invalid(name, "longer than %d characters" % max_chars)
    if not value and not allow_empty:
        raise _invalid(name, "must not be empty")
    return value


def optional_str(data: Dict[str, Any], name: str, max_chars: int, default: str = "") -> str:
    """Return an optional string field, ``default`` when absent or null."""
    if data.get(name) is None:
        return default
    return require_str(data, name, max_chars, allow_empty=True)


def require_token(data: Dict[str, Any], name: str, max_chars: int) -> str:
    """Return a short identifier made of safe ASCII characters."""
    value = require_str(data, name, max_chars)
    if not TOKEN_RE.match(value):
        raise _invalid(name, "has characters outside [A-Za-z0-9._:@-]")
    return value


def optional_token(data: Dict[str, Any], name: str, max_chars: int) -> str:
    """Return an optional token field; absent, null or "" gives ""."""
    value = data.get(name)
    if value is None or value == "":
        return ""
    return require_token(data, name, max_chars)


def require_uuid(data: Dict[str, Any], name: str) -> str:
    """Return a UUID string, lower-cased (hyphens kept as given)."""
    value = require_str(data, name, 36)
    if not UUID_RE.match(value):
        raise _invalid(name, "must be a UUID")
    return value.lower()


def require_choice(data: Dict[str, Any], name: str, choices: Collection[str]) -> str:
    """Return a string field that is one of ``choices``."""
    value = data.get(name)
    if not isinstance(value, str) or value not in choices:
        raise _invalid(name, "must be one of %s" % ", ".join(sorted(choices)))
    return value


def require_bool(data: Dict[str, Any], name: str) -> bool:
    """Return a boolean field."""
    value = data.get(name)
    if not isinstance(value, bool):
        raise _invalid(name, "must be true or false")
    return value


def require_object(data: Dict[str, Any], name: str) -> Dict[str, Any]:
    """Return a JSON object field."""
    value = data.get(name)
    if not isinstance(value, dict):
        raise _invalid(name, "must be an object")
    return value
