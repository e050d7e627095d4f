"""Hypothesis strategies for fuzz inputs: byte streams one side of the channel may send, and how they arrive.

A stream is a list of pieces: raw bytes, or frames built around the
envelope (valid, with mutated fields, or mutated byte by byte). A valid
frame names the session and the last challenge's nonce with placeholders
(SESSION, NONCE) that the target fills in when it feeds the piece, so
valid-looking input reaches the monitor instead of being dropped as stale.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from hypothesis import strategies as st

from ha_guest.protocol import heartbeat as hb
from ha_guest.protocol import sgm
from ha_guest.protocol.envelope import Envelope, encode
from ha_guest.protocol.limits import MAX_BROADCAST_BYTES, MAX_FRAME_BYTES, MAX_INTERVAL_MS, MAX_TOKEN_CHARS
from ha_guest.protocol.messages import Error, Hello, HelloAck, HelloRequest, Message

#: Replaced by the current session id (hex) when the piece is fed.
SESSION = "@@SESSION@@"
#: Replaced by the nonce of the last challenge the host wrote (host target) or any token (guest target).
NONCE = "@@NONCE@@"

_TOKEN_CHARS = string.ascii_letters + string.digits + "._:@-"
tokens = st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=MAX_TOKEN_CHARS)
nonces = st.one_of(st.just(NONCE), st.just(NONCE), tokens)
reasons = st.one_of(st.just(""), st.text(max_size=300))
seqs = st.one_of(st.integers(0, 2 ** 53 - 1), st.integers(0, 50))
versions = st.one_of(st.just(1), st.integers(-2, 70000))
sessions = st.one_of(st.just(SESSION), st.just(SESSION), st.just(SESSION), st.none(), tokens)
uuids = st.uuids().map(str)

# -- messages each side sends (within the protocol's limits, or near them) --------------------------

guest_to_host = st.one_of(
    st.builds(HelloAck, st.one_of(st.just(1), versions), st.text(max_size=MAX_TOKEN_CHARS)),
    st.just(HelloRequest()),
    st.builds(hb.Init, st.integers(1, MAX_INTERVAL_MS + 10)),
    st.builds(hb.Response, nonces, st.sampled_from(sorted(hb.HEALTH_VALUES)), reasons),
    st.builds(hb.Response, nonces, st.just(hb.HEALTHY), st.just("")),  # the fast path's shape
    st.builds(hb.Exit, reasons),
    st.builds(Error, tokens, reasons, st.one_of(st.none(), seqs)),
    st.builds(sgm.Broadcast, st.binary(max_size=MAX_BROADCAST_BYTES)),
    st.just(sgm.StatusRequest()),
)
host_to_guest = st.one_of(
    st.builds(Hello, versions, versions),
    st.builds(hb.InitAck, st.integers(1, MAX_INTERVAL_MS + 10), st.integers(0, hb.MAX_MISS_THRESHOLD + 1)),
    st.builds(hb.Challenge, nonces),
    st.just(hb.ExitAck()),
    st.builds(Error, tokens, reasons, st.one_of(st.none(), seqs)),
    st.builds(sgm.BroadcastDeliver, uuids, st.binary(max_size=MAX_BROADCAST_BYTES)),
    st.builds(sgm.Notification, uuids, tokens, tokens, st.one_of(st.just(""), tokens)),
    st.builds(sgm.StatusReply, seqs, st.lists(st.builds(sgm.MemberStatus, uuids, tokens, st.just(""),
                                                        st.booleans()), max_size=4).map(tuple)),
    st.builds(sgm.Nack, seqs, tokens, reasons),
)


def frame(message: Message, seq: int, session: Any, version: int) -> bytes:
    """Encode a message as the peer would; messages built past the limits are written by hand."""
    try:
        return encode(Envelope(message, seq, session, version))
    except Exception:  # noqa: BLE001 - e.g. over MAX_FRAME_BYTES: the bytes go out all the same
        obj = {"v": version, "app": message.APP, "type": message.TYPE, "seq": seq, "session": session,
               "data": message.to_data()}
        return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"


def valid_frames(messages: Any) -> Any:
    """Frames of the given messages with envelope fields that are mostly right."""
    return st.builds(frame, messages, seqs, sessions, st.one_of(st.just(1), st.just(1), versions))


# -- hostile shapes --------------------------------------------------------------------------------

huge_ints = st.one_of(st.integers(2 ** 53, 2 ** 70), st.integers(-2 ** 70, -1),
                      st.integers(1, 5000).map(lambda n: int("9" * n) if n < 4000 else 0))
weird_json = st.recursive(
    st.none() | st.booleans() | huge_ints | st.integers(-10, 10) | st.floats() | st.text(max_size=30)
    | st.sampled_from(["\ud800", "\x00\n\r\x1b[2J", SESSION, NONCE, "healthy", "heartbeat", "response"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
envelope_keys = ["v", "app", "type", "seq", "session", "data"]
data_keys = ["version", "agent", "interval_ms", "nonce", "health", "reason", "code", "detail", "ref_seq",
             "payload", "version_min", "version_max", "miss_threshold", "members", "sender", "member", "event"]


@st.composite
def mutated_envelopes(draw: Any) -> bytes:
    """An envelope of a known type whose fields (envelope and data) are replaced by odd JSON values."""
    message = draw(st.one_of(guest_to_host, host_to_guest))
    obj: Dict[str, Any] = {"v": 1, "app": message.APP, "type": message.TYPE, "seq": draw(seqs),
                           "session": SESSION, "data": dict(message.to_data())}
    for key in draw(st.lists(st.sampled_from(envelope_keys), max_size=3)):
        if draw(st.booleans()):
            obj.pop(key, None)
        else:
            obj[key] = draw(weird_json)
    if isinstance(obj.get("data"), dict):
        for key in draw(st.lists(st.sampled_from(data_keys), max_size=3)):
            obj["data"][key] = draw(weird_json)
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=draw(st.booleans()), allow_nan=True)
    return text.encode("utf-8", "surrogatepass") + b"\n"


deep_nesting = st.builds(
    lambda opener, closer, depth, closed: opener * depth + (closer * depth if closed else b"") + b"\n",
    st.sampled_from([b"[", b'{"a":', b'{"v":1,"data":']), st.sampled_from([b"]", b"}"]),
    st.integers(1, MAX_FRAME_BYTES // 2 + 10), st.booleans())
long_numbers = st.builds(
    lambda prefix, digits, suffix: prefix + b"1" * digits + suffix + b"\n",
    st.sampled_from([b"", b"-", b'{"v":1,"app":"heartbeat","type":"response","seq":',
                     b'{"v":', b'{"v":1,"app":"heartbeat","type":"init","seq":1,"session":"' + SESSION.encode()
                     + b'","data":{"interval_ms":']),
    st.integers(1, MAX_FRAME_BYTES + 10), st.sampled_from([b"", b"}", b',"session":null,"data":{}}', b"}}", b"e999"]))
literals = st.sampled_from([
    b"NaN\n", b"Infinity\n", b"-Infinity\n", b'{"v":NaN}\n', b"1e999999\n", b'"\\ud800"\n', b'{"v":1,"v":2}\n',
    b"\xef\xbb\xbf{}\n", b"\xff\xfe\n", b"\xc0\x80\n", b"\xed\xa0\x80\n", b"\xf4\x90\x80\x80\n", b"{\n", b"\"\n",
    b"\x00\n", b"\r\n", b"\r\r\r\n", b" \t \n", b"\n",
])
floods = st.builds(lambda unit, count: unit * count,
                   st.sampled_from([b"\n", b"\r\n", b" \n", b"x\n", b"{}\n", b"\xff\n"]), st.integers(1, 3000))
oversize = st.builds(lambda size, end: b"a" * size + end, st.integers(MAX_FRAME_BYTES - 2, 3 * MAX_FRAME_BYTES),
                     st.sampled_from([b"", b"\n", b"\r\n"]))


@st.composite
def byte_mutations(draw: Any, frames: Any) -> bytes:
    """A valid frame with bytes flipped, inserted, deleted or cut: bad UTF-8, lost quotes, early ends."""
    data = bytearray(draw(frames))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 3))
        if op == 0:
            data[at] = draw(st.sampled_from([0xFF, 0xC0, 0x80, 0xED, 0x00, 0x22, 0x5C, 0x0A, 0x0D]))
        elif op == 1:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2:
            del data[at:at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


def pieces(messages: Any) -> Any:
    """One piece of a stream: valid frames most often, every hostile shape now and then."""
    frames = valid_frames(messages)
    return st.one_of(
        frames, frames,
        frames.flatmap(lambda f: st.integers(2, 120).map(lambda n: f * n)),  # a valid-frame flood
        mutated_envelopes(), byte_mutations(frames), deep_nesting, long_numbers, literals,
        st.binary(max_size=300), floods, oversize,
        frames.map(lambda f: f[:-1]),  # unterminated
    )


@dataclass(frozen=True)
class Delivery:
    """How a stream reaches the target: read sizes, entry points and clock steps, each cycled."""

    chunk_sizes: Tuple[int, ...]
    use_buffer: Tuple[bool, ...]  # host: buffer_updated (True) or data_received
    clock_steps: Tuple[float, ...]  # seconds the fake clock moves before each read


deliveries = st.builds(
    Delivery,
    st.lists(st.one_of(st.integers(1, 64), st.integers(1, 20000)), min_size=1, max_size=8).map(tuple),
    st.lists(st.booleans(), min_size=1, max_size=4).map(tuple),
    st.lists(st.one_of(st.just(0.0), st.floats(0.0, 0.2), st.floats(0.0, 5.0)), min_size=1, max_size=6).map(tuple),
)


@dataclass(frozen=True)
class FuzzInput:
    """One fuzz input: a prelude flag (register first), the stream's pieces and how they are delivered."""

    prelude: bool
    heartbeat: bool  # host: the flavor enables heartbeat; guest: the agent is configured for it
    sgm: bool  # host: the flavor enables server group messaging
    interval_ms: int
    pieces: List[bytes]
    delivery: Delivery


def inputs(messages: Any) -> Any:
    """Fuzz inputs for a target that receives ``messages``."""
    return st.builds(
        FuzzInput, st.booleans(), st.one_of(st.just(True), st.booleans()), st.booleans(),
        st.sampled_from([100, 100, 250, 1000, MAX_INTERVAL_MS]),
        st.lists(pieces(messages), min_size=1, max_size=6), deliveries)


host_inputs = inputs(guest_to_host)
guest_inputs = inputs(host_to_guest)
