"""At most one log line per period for things a guest can repeat at line rate."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Optional

#: Seconds between two lines through one gate; the lines in between are counted.
LOG_PERIOD_S = 10.0


class LogGate:
    """Let one line through per period (e.g. per channel); count and mention the rest."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float], period: float = LOG_PERIOD_S,
                 instance_uuid: Optional[str] = None) -> None:
        self.logger = logger
        self.period = period
        self.suppressed = 0
        self._clock = clock
        self._quiet_until = float("-inf")
        # A gate of one instance's lines: each carries it the oslo.log way ("[instance: <uuid>] ").
        self._extra = {"instance_uuid": instance_uuid} if instance_uuid else None

    def log(self, level: int, message: str, *args: Any, exc_info: bool = False,
            instance_uuid: Optional[str] = None) -> None:
        """Log now, or count the line for the next one that gets through."""
        if not self.logger.isEnabledFor(level):
            return  # a line nobody sees (debug) must not use up the period of one they would
        now = self._clock()
        if now < self._quiet_until:
            self.suppressed += 1
            return
        if self.suppressed:
            message += " (%d similar lines suppressed)" % self.suppressed
            self.suppressed = 0
        self._quiet_until = now + self.period
        extra = {"instance_uuid": instance_uuid} if instance_uuid else self._extra
        if extra is None:  # oslo.log's adapter refuses extra=None
            self.logger.log(level, message, *args, exc_info=exc_info)
        else:
            self.logger.log(level, message, *args, exc_info=exc_info, extra=extra)


class KeyedLogGates:
    """One LogGate per key (a reason, a peer host), made on first use; safe to call from any thread."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float], period: float = LOG_PERIOD_S,
                 instance_uuid: Optional[str] = None) -> None:
        self.logger = logger
        self.period = period
        self._clock = clock
        self._instance_uuid = instance_uuid
        self._gates: Dict[str, LogGate] = {}
        self._lock = threading.Lock()

    def log(self, key: str, level: int, message: str, *args: Any, instance_uuid: Optional[str] = None) -> None:
        """Log through the gate of ``key``; ``instance_uuid`` marks a line about one instance."""
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                gate = self._gates[key] = LogGate(self.logger, self._clock, self.period, self._instance_uuid)
            gate.log(level, message, *args, instance_uuid=instance_uuid)
