"""Load the wire protocol test vectors and run them through a ChannelCodec.

The vectors are data (``frames.json``) so that host-side, guest-side and
protocol tests, and other implementations, check the same cases. A case feeds
bytes to a receiver of one role and lists what must come out; see the file's
``description`` for the format.
"""

from __future__ import annotations

import base64
import binascii
import json
import pathlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ha_guest.protocol import codec as codec_mod
from ha_guest.protocol import errors
from ha_guest.protocol.envelope import Envelope

VECTORS_DIR = pathlib.Path(__file__).resolve().parent

_UNSET: Any = object()


@dataclass(frozen=True)
class Case:
    """One test vector: bytes for a receiver of ``role`` and the expected results."""

    name: str
    role: str
    chunks: Sequence[bytes]
    session: Optional[str]
    expect: Sequence[Dict[str, Any]]
    session_after: Any = _UNSET

    @property
    def data(self) -> bytes:
        """The whole input as one byte string."""
        return b"".join(self.chunks)

    @property
    def checks_session_after(self) -> bool:
        """Whether the case names the receiver's session after the input."""
        return self.session_after is not _UNSET


def _bytes_of(item: Dict[str, Any], where: str) -> bytes:
    keys = [k for k in ("input", "input_hex", "input_b64") if k in item]
    if len(keys) != 1:
        raise ValueError("%s: give exactly one of input, input_hex, input_b64" % where)
    value = item[keys[0]]
    if keys[0] == "input":
        return value.encode("utf-8")
    if keys[0] == "input_hex":
        return binascii.unhexlify(value)
    return base64.b64decode(value, validate=True)


def _case(raw: Dict[str, Any], default_session: Optional[str]) -> Case:
    name = raw["name"]
    if raw.get("role") not in (codec_mod.HOST, codec_mod.GUEST):
        raise ValueError("%s: role must be host or guest" % name)
    if "chunks" in raw:
        chunks = [_bytes_of(item, name) for item in raw["chunks"]]
    else:
        chunks = [_bytes_of(raw, name)]
    expect = raw["expect"]
    if isinstance(expect, dict):
        expect = [expect]
    for item in expect:
        if item.get("kind") not in ("message", "error", "stale"):
            raise ValueError("%s: unknown expect kind %r" % (name, item.get("kind")))
    return Case(
        name=name,
        role=raw["role"],
        chunks=tuple(chunks),
        session=raw.get("session", default_session),
        expect=tuple(expect),
        session_after=raw.get("session_after", _UNSET),
    )


def load_cases(filename: str = "frames.json") -> List[Case]:
    """Return every case of a vectors file in ``tests/vectors``."""
    with open(VECTORS_DIR / filename, encoding="utf-8") as f:
        doc = json.load(f)
    cases = [_case(raw, doc.get("session")) for raw in doc["cases"]]
    names = [c.name for c in cases]
    if len(names) != len(set(names)):
        raise ValueError("%s: case names must be unique" % filename)
    return cases


def make_codec(case: Case) -> codec_mod.ChannelCodec:
    """Return a codec of the case's receiving role, in the case's session."""
    codec = codec_mod.ChannelCodec(case.role)
    codec.session = case.session
    return codec


def describe(item: codec_mod.Received) -> Dict[str, Any]:
    """Describe one codec result in the vectors' ``expect`` shape."""
    if isinstance(item, errors.ProtocolError):
        return {"kind": "error", "code": item.code, "ref_seq": item.ref_seq}
    assert isinstance(item, Envelope)
    # Round-trip through JSON so tuples and bytes compare as the file has them.
    data = json.loads(json.dumps(item.message.to_data()))
    return {"kind": "message", "app": item.app, "type": item.type, "data": data}


def run_case(case: Case, codec: Optional[codec_mod.ChannelCodec] = None) -> List[str]:
    """Feed a case to a codec and return its mismatches (empty when it passes)."""
    codec = codec or make_codec(case)
    stale_before = codec.stale_frames
    results: List[Dict[str, Any]] = []
    for chunk in case.chunks:
        results.extend(describe(item) for item in codec.feed(chunk))
    problems: List[str] = []
    wanted = [e for e in case.expect if e["kind"] != "stale"]
    stale_wanted = len(case.expect) - len(wanted)
    stale_seen = codec.stale_frames - stale_before
    if stale_seen != stale_wanted:
        problems.append("%d stale frames, expected %d" % (stale_seen, stale_wanted))
    if len(results) != len(wanted):
        problems.append("got %r, expected %r" % (results, wanted))
    else:
        for got, want in zip(results, wanted, strict=True):
            # ref_seq is only compared when the case gives it.
            if want["kind"] == "error" and "ref_seq" not in want:
                got = dict(got)
                got.pop("ref_seq", None)
            if got != want:
                problems.append("got %r, expected %r" % (got, want))
    if case.checks_session_after and codec.session != case.session_after:
        problems.append("session %r after input, expected %r" % (codec.session, case.session_after))
    return problems
