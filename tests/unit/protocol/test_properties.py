"""Property tests: round trips, arbitrary input, arbitrary chunking, bounded buffers."""

from __future__ import annotations

import json
import string
import unittest
from typing import Any, Dict, List, Type

from hypothesis import given, settings
from hypothesis import strategies as st

from ha_guest.protocol import (
    GUEST,
    HOST,
    ChannelCodec,
    Envelope,
    Error,
    Hello,
    HelloAck,
    HelloRequest,
    Message,
    decode,
    encode,
    errors,
    registered_types,
    sgm,
)
from ha_guest.protocol import heartbeat as hb
from ha_guest.protocol.fields import MAX_SAFE_INT
from ha_guest.protocol.limits import (
    MAX_BROADCAST_BYTES,
    MAX_FRAME_BYTES,
    MAX_GROUP_MEMBERS,
    MAX_INTERVAL_MS,
    MAX_REASON_CHARS,
    MAX_TOKEN_CHARS,
    MIN_INTERVAL_MS,
)
from ha_guest.protocol.messages import GUEST_TO_HOST, HOST_TO_GUEST

FAST = settings(max_examples=60, deadline=None)
SLOW = settings(max_examples=25, deadline=None)

tokens = st.text(alphabet=string.ascii_letters + string.digits + "._:@-", min_size=1, max_size=MAX_TOKEN_CHARS)
optional_tokens = st.one_of(st.just(""), tokens)
reasons = st.text(max_size=MAX_REASON_CHARS)
uuids = st.uuids().map(str)
seqs = st.integers(0, MAX_SAFE_INT)
versions = st.integers(1, 65535)
payloads = st.binary(max_size=MAX_BROADCAST_BYTES)
members = st.builds(sgm.MemberStatus, uuids, tokens, optional_tokens, st.booleans())


@st.composite
def hellos(draw: Any) -> Hello:
    low = draw(versions)
    return Hello(low, draw(st.integers(low, 65535)))


MESSAGES: Dict[Type[Message], Any] = {
    Hello: hellos(),
    HelloAck: st.builds(HelloAck, versions, st.text(max_size=MAX_TOKEN_CHARS)),
    HelloRequest: st.just(HelloRequest()),
    Error: st.builds(Error, tokens, reasons, st.one_of(st.none(), seqs)),
    hb.Init: st.builds(hb.Init, st.integers(MIN_INTERVAL_MS, MAX_INTERVAL_MS)),
    hb.InitAck: st.builds(hb.InitAck, st.integers(MIN_INTERVAL_MS, MAX_INTERVAL_MS),
                          st.integers(1, hb.MAX_MISS_THRESHOLD)),
    hb.Challenge: st.builds(hb.Challenge, tokens),
    hb.Response: st.builds(hb.Response, tokens, st.sampled_from(sorted(hb.HEALTH_VALUES)), reasons),
    hb.Exit: st.builds(hb.Exit, reasons),
    hb.ExitAck: st.just(hb.ExitAck()),
    sgm.Broadcast: st.builds(sgm.Broadcast, payloads),
    sgm.BroadcastDeliver: st.builds(sgm.BroadcastDeliver, uuids, payloads),
    sgm.Notification: st.builds(sgm.Notification, uuids, tokens, tokens, optional_tokens),
    sgm.StatusRequest: st.just(sgm.StatusRequest()),
    sgm.StatusReply: st.builds(sgm.StatusReply, seqs,
                               st.lists(members, max_size=MAX_GROUP_MEMBERS).map(tuple)),
    sgm.Nack: st.builds(sgm.Nack, seqs, tokens, reasons),
}
any_message = st.one_of(*MESSAGES.values())
host_messages = st.one_of(*(s for cls, s in MESSAGES.items() if cls.DIRECTION != GUEST_TO_HOST))
guest_messages = st.one_of(*(s for cls, s in MESSAGES.items() if cls.DIRECTION != HOST_TO_GUEST))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**60, 2**60) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(sorted({
    "version_min", "version_max", "version", "agent", "code", "detail", "ref_seq", "interval_ms", "miss_threshold",
    "nonce", "health", "reason", "payload", "sender", "member", "event", "state", "power_state", "members",
    "uuid", "self",
}))


@st.composite
def envelope_objects(draw: Any) -> Dict[str, Any]:
    """Envelope-shaped objects of known types with random data, to fuzz every validator."""
    app, type_ = draw(st.sampled_from(sorted(registered_types())))
    data = draw(st.dictionaries(field_names, json_values | st.lists(
        st.dictionaries(field_names, json_values, max_size=5), max_size=3), max_size=6))
    obj: Dict[str, Any] = {"v": 1, "app": app, "type": type_, "seq": draw(seqs), "session": "s", "data": data}
    for key in draw(st.lists(st.sampled_from(sorted(obj)), max_size=2)):
        obj[key] = draw(json_values)
    return obj


class TestRoundTrip(unittest.TestCase):
    """Every valid message survives encode/decode unchanged and fits in a frame."""

    def test_strategies_cover_every_type(self) -> None:
        self.assertEqual(set(registered_types().values()), set(MESSAGES))

    @FAST
    @given(any_message, seqs, st.one_of(st.none(), st.text(min_size=1, max_size=MAX_TOKEN_CHARS)))
    def test_round_trip(self, message: Message, seq: int, session: Any) -> None:
        frame = encode(Envelope(message, seq, session))
        self.assertLessEqual(len(frame) - 1, MAX_FRAME_BYTES)
        self.assertEqual(1, frame.count(b"\n"))
        self.assertEqual(Envelope(message, seq, session), decode(frame[:-1]))

    @FAST
    @given(st.lists(guest_messages, max_size=8))
    def test_guest_to_host_through_codecs(self, messages: List[Message]) -> None:
        guest, host = ChannelCodec(GUEST), ChannelCodec(HOST)
        host.start_session()
        guest.feed(host.encode(Hello(1, 1)))
        out = host.feed(b"".join(guest.encode(m) for m in messages))
        self.assertEqual(messages, [e.message for e in out])  # type: ignore[union-attr]

    @FAST
    @given(st.lists(host_messages, max_size=8))
    def test_host_to_guest_through_codecs(self, messages: List[Message]) -> None:
        guest, host = ChannelCodec(GUEST), ChannelCodec(HOST)
        host.start_session()
        out = guest.feed(host.encode(Hello(1, 1)) + b"".join(host.encode(m) for m in messages))
        self.assertEqual([Hello(1, 1)] + messages, [e.message for e in out])  # type: ignore[union-attr]


class TestArbitraryInput(unittest.TestCase):
    """No input makes feed() raise; it returns messages and ProtocolErrors only."""

    def check_feed(self, codec: ChannelCodec, chunks: List[bytes]) -> None:
        for chunk in chunks:
            for item in codec.feed(chunk):
                self.assertIsInstance(item, (Envelope, errors.ProtocolError))
                if isinstance(item, errors.ProtocolError):
                    self.assertIn(item.code, errors.ERROR_CODES)
                    # The error reply to it must be encodable.
                    codec.encode(Error.from_exception(item))
            self.assertLessEqual(codec.decoder.pending_bytes, codec.decoder.max_frame_bytes)

    @FAST
    @given(st.sampled_from([HOST, GUEST]), st.lists(st.binary(max_size=300), max_size=10))
    def test_random_bytes(self, role: str, chunks: List[bytes]) -> None:
        self.check_feed(ChannelCodec(role), chunks)

    @FAST
    @given(st.sampled_from([HOST, GUEST]), st.lists(
        st.one_of(st.binary(max_size=40), st.just(b"\n"), st.just(b"\r\n"), st.just(b"{"), st.just(b'"'),
                  st.sampled_from([b'{"v":1,', b'"seq":3,', b'"app":"sgm",', b'"type":"nack",', b'"data":{}}',
                                   b"\xe2\x98", b"\\ud800", b"NaN"])),
        max_size=30))
    def test_structured_garbage(self, role: str, chunks: List[bytes]) -> None:
        self.check_feed(ChannelCodec(role), chunks)

    @SLOW
    @given(st.sampled_from([HOST, GUEST]), st.lists(envelope_objects(), min_size=1, max_size=3))
    def test_random_fields_of_known_types(self, role: str, objects: List[Dict[str, Any]]) -> None:
        codec = ChannelCodec(role)
        codec.session = "s"
        self.check_feed(codec, [json.dumps(o).encode() + b"\n" for o in objects])

    @FAST
    @given(json_values)
    def test_random_json(self, value: Any) -> None:
        for role in (HOST, GUEST):
            self.check_feed(ChannelCodec(role), [json.dumps(value).encode() + b"\n"])


class TestChunking(unittest.TestCase):
    """Any chunking of a valid stream yields the same messages."""

    @SLOW
    @given(st.lists(host_messages, min_size=1, max_size=6), st.lists(st.integers(0, 20000), max_size=12))
    def test_arbitrary_chunking(self, messages: List[Message], cuts: List[int]) -> None:
        host = ChannelCodec(HOST)
        host.start_session()
        stream = host.encode(Hello(1, 1)) + b"\n\r\n" + b"".join(host.encode(m) for m in messages)
        points = sorted({c % (len(stream) + 1) for c in cuts})
        chunks = [stream[a:b] for a, b in zip([0] + points, points + [len(stream)], strict=True)]
        whole = ChannelCodec(GUEST).feed(stream)
        guest = ChannelCodec(GUEST)
        pieces: List[Any] = []
        for chunk in chunks:
            pieces.extend(guest.feed(chunk))
        self.assertEqual(whole, pieces)
        self.assertEqual([Hello(1, 1)] + messages, [e.message for e in pieces])


class TestBoundedBuffer(unittest.TestCase):
    """The decoder never holds more than max_frame_bytes, whatever arrives."""

    @FAST
    @given(st.integers(1, 300), st.lists(st.binary(max_size=200) | st.just(b"x" * 500), max_size=20))
    def test_small_limit(self, limit: int, chunks: List[bytes]) -> None:
        codec = ChannelCodec(HOST, max_frame_bytes=limit)
        for chunk in chunks:
            codec.feed(chunk)
            self.assertLessEqual(codec.decoder.pending_bytes, limit)

    @SLOW
    @given(st.lists(st.integers(1, 6000), min_size=1, max_size=8))
    def test_default_limit_without_newlines(self, sizes: List[int]) -> None:
        codec = ChannelCodec(GUEST)
        reported = 0
        for size in sizes:
            reported += len(codec.feed(b"a" * size))
            self.assertLessEqual(codec.decoder.pending_bytes, MAX_FRAME_BYTES)
        self.assertEqual(1 if sum(sizes) > MAX_FRAME_BYTES else 0, reported)
