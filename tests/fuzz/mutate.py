"""Cheap inputs for the long run: pieces Hypothesis generated, recombined and mutated by a seeded PRNG.

Hypothesis spends a few milliseconds drawing one structure-aware input,
longer than the targets take to eat it. The long run therefore draws a
corpus of pieces with Hypothesis (every one of those inputs is run too) and
then makes most inputs from it the way coverage-blind fuzzers do: pick a few
pieces, splice, flip, cut, repeat and chunk them at random. Input ``i`` of
a run depends only on the corpus and ``seed + i``, so a failure is replayed
with ``--replay``.
"""

from __future__ import annotations

import random
from typing import List, Sequence

from ha_guest.protocol import heartbeat
from tests.fuzz.inputs import NONCE, SESSION, Delivery, FuzzInput, frame

#: The reference agent's healthy answer to the last challenge (the host's fast path).
HEALTHY = frame(heartbeat.Response(NONCE, heartbeat.HEALTHY, ""), 7, SESSION, 1)

_TOKENS = [b"\n", b"\r\n", b"\r", b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"{", b"}", b"[", b"]", b'"', b"\\",
           b"\\u0000", b"\\ud800", b":", b",", b"null", b"true", b"-0", b"1e400", b"NaN", b"9" * 400,
           b"18446744073709551616", SESSION.encode(), NONCE.encode(), b'"healthy"', b'"response"', b'"init"',
           b'"hello_ack"', b'"heartbeat"', b'"sgm"', b'"base"']


def _mutate(rng: random.Random, data: bytes, corpus: Sequence[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        at = rng.randint(0, len(buf))
        if op == 0 and buf:  # flip a byte
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:  # insert a token
            buf[at:at] = rng.choice(_TOKENS)
        elif op == 2:  # delete a run
            del buf[at:at + rng.randint(1, 16)]
        elif op == 3:  # cut: an unterminated tail
            del buf[at:]
        elif op == 4:  # splice in part of another piece
            other = rng.choice(corpus)
            start = rng.randint(0, len(other))
            buf[at:at] = other[start:start + rng.randint(1, 256)]
        elif op == 5:  # repeat a run (floods, deep nesting)
            run = bytes(buf[at:at + rng.randint(1, 32)]) or b"\n"
            buf[at:at] = run * (rng.randint(2, 400) if rng.random() < 0.15 else rng.randint(2, 10))
        elif op == 6:  # random bytes
            buf[at:at] = rng.randbytes(rng.randint(1, 64))
        else:  # a digit run in place of a number
            buf[at:at] = b"1" * rng.choice([1, 15, 16, 17, 300, 5000])
    return bytes(buf)


def make_input(rng: random.Random, corpus: Sequence[bytes]) -> FuzzInput:
    """One input from the corpus: a few pieces, some mutated, a random delivery."""
    pieces: List[bytes] = []
    for _ in range(rng.randint(1, 6)):
        piece = rng.choice(corpus)
        roll = rng.random()
        if roll < 0.4:
            piece = _mutate(rng, piece, corpus)
        elif roll < 0.47:
            piece = piece * rng.randint(2, 100)  # a flood of the same piece
        elif roll < 0.55:
            piece = rng.randbytes(rng.randint(0, 512))
        pieces.append(piece)
    if rng.random() < 0.3:
        # A guest that keeps answering between its hostile pieces: the monitor's verdicts change.
        for _ in range(rng.randint(1, 8)):
            pieces.insert(rng.randint(0, len(pieces)), HEALTHY)
    delivery = Delivery(
        tuple(rng.choice([1, 2, 7, 64, 100, 511, 4096, 8193, 16386, 20000]) if rng.random() < 0.5
              else rng.randint(1, 2048) for _ in range(rng.randint(1, 6))),
        tuple(rng.random() < 0.6 for _ in range(rng.randint(1, 3))),
        tuple(rng.choice([0.0, 0.0, 0.001, 0.01, 0.05, 0.1, 0.3, 1.0, 2.5]) for _ in range(rng.randint(1, 5))),
    )
    return FuzzInput(prelude=rng.random() < 0.7, heartbeat=rng.random() < 0.85, sgm=rng.random() < 0.5,
                     interval_ms=rng.choice([100, 250, 1000, 60000]), pieces=pieces, delivery=delivery)
