"""Guest-supplied text made safe for the host's logs, and per-guest log line limits.

Anything a guest sends (a ``reason``, an error's ``code`` and ``detail``, its
agent's name, the text of a bad frame) may hold newlines that forge log
lines, terminal escapes, bidi overrides, lone surrogates or a megabyte.
Every host log line that carries such text passes it through ``clean``: one
printable line, at most ``MAX_CHARS`` characters. Nothing here may raise on
any input, nor cost more than a few hundred characters of work per value.

A guest also decides how often some lines are written (faults, recoveries,
exits, registrations): ``GuestLogs`` bounds each kind of line per instance.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict

from ha_guest.compute.log_gate import LOG_PERIOD_S, KeyedLogGates
from ha_guest.protocol.ratelimit import TokenBucket

#: Characters of one guest-supplied value kept in a log line.
MAX_CHARS = 200
#: Incident lines (a new incident's FAULT, a recovery) one instance may log at once, and per minute after.
INCIDENT_LINES_BURST = 10
INCIDENT_LINES_PER_MIN = 10.0

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return "\\x%02x" % code
    return "\\u%04x" % code if code < 0x10000 else "\\U%08x" % code


def clean(value: Any, limit: int = MAX_CHARS) -> str:
    """Return ``value`` as one printable line: escaped, and cut to ``limit`` characters with a length note."""
    unit = "chars"
    if isinstance(value, str):
        text, size = value, len(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        # Decode only what can be shown: UTF-8 takes at most 4 bytes a character.
        text, size, unit = bytes(value[:limit * 4]).decode("utf-8", "replace"), len(value), "bytes"
    else:
        try:
            text = str(value)
        except Exception:  # noqa: BLE001 - a log line must not fail
            text = "<unprintable %s>" % type(value).__name__
        size = len(text)
    head = text[:limit]
    # Backslashes are escaped too, so that an escape in the log always means
    # the guest sent a control character, never that it typed one.
    if not head.isprintable() or "\\" in head:
        head = "".join(char if char.isprintable() and char != "\\" else _escape(char) for char in head)
    if size > limit or len(text) > limit or len(head) > limit:
        return "%s...(%d %s)" % (head[:limit], size, unit)
    return head


class GuestLogs:
    """Per-instance limits on the log lines a guest can cause, on the agent's loop."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float], period: float = LOG_PERIOD_S) -> None:
        self.logger = logger
        self.period = period
        self._clock = clock
        self._gates: Dict[str, KeyedLogGates] = {}
        self._incidents: Dict[str, TokenBucket] = {}

    def line(self, instance: str, topic: str, level: int, message: str, *args: Any) -> None:
        """Log one line of ``topic`` for ``instance`` ("[instance: <uuid>] "): one per period, the rest counted."""
        gates = self._gates.get(instance)
        if gates is None:
            gates = self._gates[instance] = KeyedLogGates(self.logger, self._clock, self.period, instance)
        gates.log(topic, level, message, *args)

    def incident(self, instance: str, level: int, message: str, *args: Any) -> None:
        """Log an incident line: each one at its level, unless the instance is past its incident line rate."""
        bucket = self._incidents.get(instance)
        if bucket is None:
            bucket = self._incidents[instance] = TokenBucket(
                INCIDENT_LINES_PER_MIN / 60.0, INCIDENT_LINES_BURST, self._clock)
        if bucket.allow():
            self.logger.log(level, message, *args, extra={"instance_uuid": instance})
        else:  # only with flap damping off: fall back to one line per period
            self.line(instance, "incident", level, message, *args)

    def forget(self, instance: str) -> None:
        """The instance is gone: drop its limits."""
        self._incidents.pop(instance, None)
        self._gates.pop(instance, None)
