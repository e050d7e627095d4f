"""Throttled logging for events a misbehaving peer can repeat at line rate."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Optional

#: Seconds between summary lines of one kind of event.
SUMMARY_PERIOD_S = 10.0


class BurstLog:
    """Log the first event of a burst, then at most one summary line per period."""

    def __init__(self, logger: logging.Logger, what: str, period: float = SUMMARY_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what
        self.period = period
        self.total = 0
        self._clock = clock
        self._quiet_until = 0.0
        self._suppressed = 0
        self._timer: Optional[asyncio.TimerHandle] = None

    def hit(self, message: str, *args: Any) -> None:
        """Log this event now, or count it for the next summary; needs a running loop."""
        self.total += 1
        now = self._clock()
        if now >= self._quiet_until and self._timer is None:
            self.logger.warning(message, *args)
            self._quiet_until = now + self.period
            return
        self._suppressed += 1
        if self._timer is None:
            delay = max(0.0, self._quiet_until - now)
            self._timer = asyncio.get_running_loop().call_later(delay, self._summary)

    def _summary(self) -> None:
        self._timer = None
        if self._suppressed:
            self.logger.warning("%d more %s in the last %gs", self._suppressed, self.what, self.period)
            self._suppressed = 0
            # Keep a storm at one line per period.
            self._quiet_until = self._clock() + self.period

    def cancel(self) -> None:
        """Drop a pending summary (on shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
