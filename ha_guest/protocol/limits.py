"""Limits of the ha_guest wire protocol; both sides enforce every one of them."""

from __future__ import annotations

#: Largest frame in bytes, the terminating newline excluded.
MAX_FRAME_BYTES = 8192

#: Largest SGM broadcast payload in bytes (before base64).
MAX_BROADCAST_BYTES = 3050

#: Heartbeat interval range in milliseconds.
MIN_INTERVAL_MS = 100
MAX_INTERVAL_MS = 60000

#: Longest free-text reason (unhealthy, exit, error detail) in characters.
MAX_REASON_CHARS = 256

#: Longest identifier-like string (nonce, session, names) in characters.
MAX_TOKEN_CHARS = 64

#: Most members listed in one SGM status reply; with every string at its
#: limit, 32 members still fit in one frame (a test checks it).
MAX_GROUP_MEMBERS = 32

#: Frames a guest may send per second (sustained) and in one burst.
GUEST_FRAME_RATE = 50.0
GUEST_FRAME_BURST = 100

#: SGM broadcasts a guest may send per second (sustained) and in one burst.
BROADCAST_RATE = 10.0
BROADCAST_BURST = 20

#: Error frames a side sends per second at most; the rest are only counted.
ERROR_REPLY_RATE = 5.0
ERROR_REPLY_BURST = 10
