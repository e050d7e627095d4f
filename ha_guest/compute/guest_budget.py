"""What one guest may make the compute agent read: bytes and lines per second, charged before any parsing.

Every read from a guest's channel is charged to that guest as it arrives,
before anything looks inside it: its bytes against a byte budget and its
newlines (``bytes.count``, in C) against a line budget. Blank lines,
partial lines, oversized lines and valid frames all cost the same way, so
no kind of input is cheaper to send than to refuse.

A read that fits is parsed as before. A read that does not fit is dropped
unparsed, the budgets are left empty, and the channel stops reading for a
pause (``transport.pause_reading``): the kernel and QEMU hold what the guest
writes meanwhile, and a guest that keeps writing is blocked by its own
virtio-serial port. So whatever a guest sends, the agent parses at most
``line_rate`` lines and ``byte_rate`` bytes of it a second (after one burst),
and while the guest is over budget it reads at most one buffer per pause,
which it only counts. The buckets run on the loop's clock: the read path
has the time at hand already, and tests drive them with a fake one.
"""

from __future__ import annotations


class GuestBudget:
    """Two token buckets, bytes and lines, charged together once per read.

    Each bucket is kept as the time at which it will be full again (the
    "theoretical arrival time" of GCRA): a charge is a few float operations
    and no refill arithmetic, which keeps the healthy path cheap.
    """

    __slots__ = ("byte_rate", "byte_burst", "line_rate", "line_burst", "_byte_s", "_line_s", "_byte_window",
                 "_line_window", "_bytes_full_at", "_lines_full_at", "lines_exceeded")

    def __init__(self, byte_rate: float, byte_burst: int, line_rate: float, line_burst: int, now: float) -> None:
        if byte_rate <= 0 or line_rate <= 0 or byte_burst < 1 or line_burst < 1:
            raise ValueError("rates must be positive and bursts at least 1")
        self.byte_rate = byte_rate
        self.byte_burst = byte_burst
        self.line_rate = line_rate
        self.line_burst = line_burst
        self._byte_s = 1.0 / byte_rate  # seconds of refill a byte costs
        self._line_s = 1.0 / line_rate
        self._byte_window = byte_burst / byte_rate  # an empty bucket is full again this much later
        self._line_window = line_burst / line_rate
        self._bytes_full_at = now
        self._lines_full_at = now
        #: Whether the last read refused exceeded the line budget (else only the byte budget).
        self.lines_exceeded = False

    def charge(self, nbytes: int, lines: int, now: float) -> bool:
        """Charge one read; True if it fits (parse it), False if not (drop it, the budgets are left empty)."""
        bytes_at = self._bytes_full_at
        if bytes_at < now:
            bytes_at = now
        bytes_at += nbytes * self._byte_s
        lines_at = self._lines_full_at
        if lines_at < now:
            lines_at = now
        lines_at += lines * self._line_s
        # A little slack for float rounding: a read of exactly what is left fits.
        if bytes_at - now <= self._byte_window + 1e-9 and lines_at - now <= self._line_window + 1e-9:
            self._bytes_full_at = bytes_at
            self._lines_full_at = lines_at
            return True
        self.lines_exceeded = lines_at - now > self._line_window + 1e-9
        # Charged too, with a floor at empty so that one huge read does not
        # lock the guest out for minutes.
        self._bytes_full_at = max(self._bytes_full_at, min(bytes_at, now + self._byte_window))
        self._lines_full_at = max(self._lines_full_at, min(lines_at, now + self._line_window))
        return False

    def available(self, now: float) -> tuple[float, float]:
        """Return the bytes and lines the next read may hold without being dropped (tests, diagnostics)."""
        return (max(0.0, self._byte_window - max(0.0, self._bytes_full_at - now)) * self.byte_rate,
                max(0.0, self._line_window - max(0.0, self._lines_full_at - now)) * self.line_rate)
