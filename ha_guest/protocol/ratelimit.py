"""Token bucket used to bound per-guest message and error rates."""

from __future__ import annotations

import time
from typing import Callable


class TokenBucket:
    """Allow ``rate`` events per second on average and ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self.denied = 0

    def allow(self, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if available; count a denial otherwise."""
        now = self._clock()
        elapsed = now - self._stamp
        self._stamp = now
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        self.denied += 1
        return False
