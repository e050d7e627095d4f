"""ChannelCodec: decoding streams, sessions, direction, sequence numbers."""

from __future__ import annotations

import json
import unittest
from typing import Any, Dict, List, Optional, Sequence

from ha_guest.protocol import GUEST, HOST, ChannelCodec, Envelope, Error, Hello, HelloAck, HelloRequest, errors, sgm
from ha_guest.protocol import heartbeat as hb
from ha_guest.protocol.limits import MAX_FRAME_BYTES

S = "3f9a0c5e7b21d864"
OTHER = "0d4b7e91c2a6f358"


def frame(app: str, type_: str, data: Optional[Dict[str, Any]] = None, seq: int = 1,
          session: Optional[str] = S, v: Any = 1) -> bytes:
    """Build a frame by hand (not with the encoder under test)."""
    obj = {"v": v, "app": app, "type": type_, "seq": seq, "session": session, "data": data or {}}
    return json.dumps(obj).encode() + b"\n"


def host_codec() -> ChannelCodec:
    codec = ChannelCodec(HOST)
    codec.start_session()
    codec.session = S
    return codec


def guest_codec(session: Optional[str] = S) -> ChannelCodec:
    codec = ChannelCodec(GUEST)
    codec.session = session
    return codec


def guest_stream() -> bytes:
    """A stream of several guest-to-host frames."""
    return b"".join([
        frame("base", "hello_ack", {"version": 1, "agent": "t\u00e9st"}, 1),
        frame("heartbeat", "init", {"interval_ms": 250}, 2),
        frame("heartbeat", "response", {"nonce": "n1", "health": "unhealthy", "reason": "d\u00e9j\u00e0 \u2603"}, 3),
        frame("sgm", "broadcast", {"payload": "aGVsbG8="}, 4),
        frame("sgm", "status_request", {}, 5),
    ])


def summary(items: Sequence[object]) -> List[Any]:
    out: List[Any] = []
    for item in items:
        if isinstance(item, errors.ProtocolError):
            out.append(("error", item.code, item.ref_seq))
        else:
            assert isinstance(item, Envelope)
            out.append((item.app, item.type, item.seq, item.message))
    return out


class TestStreams(unittest.TestCase):
    """The codec yields the same messages however the stream is chunked."""

    def setUp(self) -> None:
        self.stream = guest_stream()
        self.expected = summary(host_codec().feed(self.stream))

    def test_reference_decoding(self) -> None:
        self.assertEqual(
            [("base", "hello_ack", 1), ("heartbeat", "init", 2), ("heartbeat", "response", 3),
             ("sgm", "broadcast", 4), ("sgm", "status_request", 5)],
            [item[:3] for item in self.expected],
        )
        self.assertEqual(hb.Response("n1", "unhealthy", "d\u00e9j\u00e0 \u2603"), self.expected[2][3])
        self.assertEqual(sgm.Broadcast(b"hello"), self.expected[3][3])

    def test_every_split_point(self) -> None:
        for cut in range(1, len(self.stream)):
            codec = host_codec()
            got = summary(codec.feed(self.stream[:cut]) + codec.feed(self.stream[cut:]))
            self.assertEqual(self.expected, got, "split at %d" % cut)

    def test_byte_by_byte(self) -> None:
        codec = host_codec()
        got: List[object] = []
        for i in range(len(self.stream)):
            got.extend(codec.feed(self.stream[i:i + 1]))
        self.assertEqual(self.expected, summary(got))

    def test_many_frames_per_read(self) -> None:
        codec = host_codec()
        stream = b"".join(frame("heartbeat", "init", {"interval_ms": 100 + i}, i) for i in range(300))
        got = codec.feed(stream)
        self.assertEqual(list(range(100, 400)), [e.message.interval_ms for e in got])  # type: ignore[union-attr]

    def test_crlf_and_blank_lines(self) -> None:
        codec = host_codec()
        stream = b"\r\n\n" + self.stream.replace(b"\n", b"\r\n\n \n")
        self.assertEqual(self.expected, summary(codec.feed(stream)))


class TestErrors(unittest.TestCase):
    """Bad input becomes ProtocolError results, counted, and never stops decoding."""

    def feed_one(self, data: bytes, codec: Optional[ChannelCodec] = None) -> errors.ProtocolError:
        codec = codec or host_codec()
        out = codec.feed(data)
        self.assertEqual(1, len(out), out)
        self.assertIsInstance(out[0], errors.ProtocolError)
        assert isinstance(out[0], errors.ProtocolError)
        return out[0]

    def test_oversized_then_valid(self) -> None:
        codec = host_codec()
        out = codec.feed(b"{" * (MAX_FRAME_BYTES + 5) + b"\n" + frame("sgm", "status_request"))
        self.assertEqual(errors.FRAME_TOO_LARGE, out[0].code)  # type: ignore[union-attr]
        self.assertEqual("status_request", out[1].type)  # type: ignore[union-attr]
        self.assertEqual({errors.FRAME_TOO_LARGE: 1}, codec.error_counts)

    def test_oversized_without_newline_bounded(self) -> None:
        codec = host_codec()
        reported = []
        for _ in range(50):
            reported.extend(codec.feed(b"x" * 4096))
            self.assertLessEqual(codec.decoder.pending_bytes, MAX_FRAME_BYTES)
        self.assertEqual(1, len(reported))
        self.assertEqual("status_request", codec.feed(b"\n" + frame("sgm", "status_request"))[0].type)  # type: ignore

    def test_invalid_utf8(self) -> None:
        exc = self.feed_one(b'{"v":1,"x":"\xc3\x28"}\n')
        self.assertEqual(errors.INVALID_UTF8, exc.code)
        self.assertIsNone(exc.ref_seq)

    def test_invalid_json(self) -> None:
        for bad in (b"{", b"{}}", b"nope", b'{"v":1,}', b"{'v':1}", b'{"v":NaN}', b'{"a":Infinity}'):
            self.assertEqual(errors.INVALID_JSON, self.feed_one(bad + b"\n").code, bad)

    def test_deep_nesting_never_raises(self) -> None:
        # Whether a deep but closed nest parses depends on the interpreter's limits;
        # either way the result is an error or a message, never an exception.
        for depth in (500, 1000, 2000, 4000):
            nested = b"[" * depth + b"]" * depth
            self.assertIn(self.feed_one(nested + b"\n").code, (errors.INVALID_JSON, errors.INVALID_ENVELOPE))
            inner = b'{"v":1,"app":"sgm","type":"status_request","seq":3,"session":"%s","x":%s}\n' % (
                S.encode(), nested)
            out = host_codec().feed(inner)
            self.assertEqual(1, len(out))
        self.assertEqual(errors.INVALID_JSON, self.feed_one(b"[" * 8000 + b"\n").code)
        self.assertEqual(errors.INVALID_JSON, self.feed_one(b'{"a":' * 1600 + b"\n").code)

    def test_lone_surrogate(self) -> None:
        data = frame("heartbeat", "exit", {}).replace(b'"data": {}', b'"data": {"reason": "\\udfff"}')
        self.assertEqual(errors.INVALID_JSON, self.feed_one(data).code)

    def test_non_object(self) -> None:
        for bad in (b"[]", b"1", b'"x"', b"null", b"true"):
            self.assertEqual(errors.INVALID_ENVELOPE, self.feed_one(bad + b"\n").code)

    def test_unknown_versions(self) -> None:
        for v in (0, 2, 99, -1):
            exc = self.feed_one(frame("sgm", "status_request", seq=9, v=v))
            self.assertEqual((errors.UNSUPPORTED_VERSION, 9), (exc.code, exc.ref_seq))
        for bad in ("1", 1.0, True, None):
            self.assertEqual(errors.INVALID_ENVELOPE, self.feed_one(frame("sgm", "status_request", v=bad)).code)

    def test_unknown_types(self) -> None:
        for app, type_ in (("sgm", "chat"), ("video", "hello"), ("", ""), ("base", "Hello")):
            exc = self.feed_one(frame(app, type_, seq=4))
            self.assertEqual((errors.UNKNOWN_TYPE, 4), (exc.code, exc.ref_seq))

    def test_long_unknown_names_are_cut_in_detail(self) -> None:
        exc = self.feed_one(frame("a" * 1000, "b" * 1000))
        self.assertLess(len(exc.detail), 100)

    def test_invalid_message(self) -> None:
        exc = self.feed_one(frame("heartbeat", "init", {"interval_ms": 99}, seq=6))
        self.assertEqual((errors.INVALID_MESSAGE, 6), (exc.code, exc.ref_seq))
        self.assertIn("interval_ms", exc.detail)

    def test_wrong_direction_on_host(self) -> None:
        for app, type_, data in (("base", "hello", {"version_min": 1, "version_max": 1}),
                                 ("heartbeat", "challenge", {"nonce": "x"}),
                                 ("sgm", "nack", {"ref_seq": 1, "reason": "no_group"})):
            exc = self.feed_one(frame(app, type_, data, seq=8))
            self.assertEqual((errors.UNEXPECTED_MESSAGE, 8), (exc.code, exc.ref_seq))

    def test_wrong_direction_on_guest(self) -> None:
        for app, type_, data in (("base", "hello_request", {}), ("heartbeat", "init", {"interval_ms": 100}),
                                 ("sgm", "broadcast", {"payload": ""})):
            exc = self.feed_one(frame(app, type_, data, seq=8), guest_codec())
            self.assertEqual((errors.UNEXPECTED_MESSAGE, 8), (exc.code, exc.ref_seq))

    def test_error_both_ways(self) -> None:
        data = {"code": "invalid_json", "detail": "x", "ref_seq": 3}
        self.assertIsInstance(host_codec().feed(frame("base", "error", data))[0], Envelope)
        self.assertIsInstance(guest_codec().feed(frame("base", "error", data))[0], Envelope)

    def test_errors_counted_and_decoding_continues(self) -> None:
        codec = host_codec()
        stream = b"\xff\n" + b"{\n" + b"[]\n" + frame("x", "y") + frame("heartbeat", "init", {"interval_ms": 1}) \
            + frame("heartbeat", "challenge", {"nonce": "a"}) + frame("sgm", "status_request")
        out = codec.feed(stream)
        self.assertEqual(7, len(out))
        self.assertEqual("status_request", out[-1].type)  # type: ignore[union-attr]
        self.assertEqual(6, codec.errors_total)
        self.assertEqual(
            {errors.INVALID_UTF8: 1, errors.INVALID_JSON: 1, errors.INVALID_ENVELOPE: 1, errors.UNKNOWN_TYPE: 1,
             errors.INVALID_MESSAGE: 1, errors.UNEXPECTED_MESSAGE: 1},
            codec.error_counts,
        )


class TestSessions(unittest.TestCase):
    """Stale frames are counted and dropped; the newest hello wins on the guest."""

    def test_host_drops_other_session(self) -> None:
        codec = host_codec()
        out = codec.feed(frame("heartbeat", "response", {"nonce": "a", "health": "healthy"}, session=OTHER))
        self.assertEqual([], out)
        self.assertEqual(1, codec.stale_frames)
        self.assertEqual(0, codec.errors_total)

    def test_host_accepts_null_session_only_for_hello_request_and_error(self) -> None:
        codec = host_codec()
        out = codec.feed(frame("base", "hello_request", session=None)
                         + frame("base", "error", {"code": "invalid_json"}, session=None)
                         + frame("base", "hello_ack", {"version": 1}, session=None)
                         + frame("heartbeat", "init", {"interval_ms": 100}, session=None)
                         + frame("sgm", "status_request", session=None))
        self.assertEqual(["hello_request", "error"], [e.type for e in out])  # type: ignore[union-attr]
        self.assertEqual(3, codec.stale_frames)

    def test_guest_never_accepts_null_session(self) -> None:
        codec = guest_codec()
        out = codec.feed(frame("base", "error", {"code": "x"}, session=None)
                         + frame("base", "hello", {"version_min": 1, "version_max": 1}, session=None)
                         + frame("heartbeat", "challenge", {"nonce": "a"}, session=None))
        self.assertEqual([], out)
        self.assertEqual(3, codec.stale_frames)
        self.assertEqual(S, codec.session)

    def test_guest_without_session_drops_until_hello(self) -> None:
        codec = guest_codec(None)
        out = codec.feed(frame("heartbeat", "challenge", {"nonce": "old"}, seq=5, session=OTHER)
                         + frame("base", "hello", {"version_min": 1, "version_max": 1}, seq=1, session=S)
                         + frame("heartbeat", "challenge", {"nonce": "new"}, seq=2, session=S))
        self.assertEqual([Hello(1, 1), hb.Challenge("new")], [e.message for e in out])  # type: ignore[union-attr]
        self.assertEqual(S, codec.session)
        self.assertEqual(1, codec.stale_frames)

    def test_newest_hello_wins(self) -> None:
        codec = guest_codec(None)
        sessions = ["%016x" % i for i in range(1, 6)]
        stream = b"".join(frame("base", "hello", {"version_min": 1, "version_max": 1}, session=s) for s in sessions)
        stream += b"".join(frame("heartbeat", "challenge", {"nonce": "n%d" % i}, session=s)
                           for i, s in enumerate(sessions))
        out = codec.feed(stream)
        self.assertEqual(sessions[-1], codec.session)
        self.assertEqual(6, len(out))
        self.assertEqual(hb.Challenge("n4"), out[-1].message)  # type: ignore[union-attr]
        self.assertEqual(4, codec.stale_frames)

    def test_hello_of_same_session_accepted_again(self) -> None:
        codec = guest_codec()
        out = codec.feed(frame("base", "hello", {"version_min": 1, "version_max": 1}) * 2)
        self.assertEqual(2, len(out))

    def test_hello_resets_version(self) -> None:
        codec = guest_codec()
        codec.version = 7
        codec.feed(frame("base", "hello", {"version_min": 1, "version_max": 1}, session=OTHER))
        self.assertEqual(1, codec.version)

    def test_invalid_hello_not_adopted(self) -> None:
        codec = guest_codec()
        out = codec.feed(frame("base", "hello", {"version_min": 2, "version_max": 1}, session=OTHER))
        self.assertEqual(errors.INVALID_MESSAGE, out[0].code)  # type: ignore[union-attr]
        self.assertEqual(S, codec.session)

    def test_start_session(self) -> None:
        codec = ChannelCodec(HOST)
        codec.feed(b'{"partial":')
        first = codec.start_session()
        self.assertRegex(first, r"^[0-9a-f]{16}$")
        self.assertEqual(0, codec.decoder.pending_bytes)
        codec.next_seq()
        codec.version = 3
        second = codec.start_session()
        self.assertNotEqual(first, second)
        self.assertEqual(1, codec.next_seq())
        self.assertEqual(1, codec.version)

    def test_reset(self) -> None:
        codec = guest_codec()
        codec.version = 2
        codec.feed(b'{"half')
        codec.reset()
        self.assertIsNone(codec.session)
        self.assertEqual(1, codec.version)
        self.assertEqual(0, codec.decoder.pending_bytes)

    def test_bad_role(self) -> None:
        with self.assertRaises(ValueError):
            ChannelCodec("hypervisor")


class TestEncoding(unittest.TestCase):
    """The codec numbers frames and stamps session and version."""

    def test_seq_and_session(self) -> None:
        codec = host_codec()
        first = json.loads(codec.encode(Hello(1, 1)))
        second = json.loads(codec.encode(hb.Challenge("abc")))
        self.assertEqual((1, S), (first["seq"], first["session"]))
        self.assertEqual((2, S), (second["seq"], second["session"]))

    def test_guest_without_session_sends_null(self) -> None:
        codec = ChannelCodec(GUEST)
        self.assertIsNone(json.loads(codec.encode(HelloRequest()))["session"])

    def test_guest_seq_continues_across_reset(self) -> None:
        codec = ChannelCodec(GUEST)
        codec.encode(HelloRequest())
        codec.reset()
        self.assertEqual(2, json.loads(codec.encode(HelloRequest()))["seq"])

    def test_base_messages_always_version_1(self) -> None:
        codec = host_codec()
        codec.version = 5
        self.assertEqual(1, json.loads(codec.encode(Hello(1, 5)))["v"])
        self.assertEqual(1, json.loads(codec.encode(Error("invalid_json")))["v"])
        self.assertEqual(5, json.loads(codec.encode(hb.Challenge("n")))["v"])
        guest = guest_codec()
        guest.version = 5
        self.assertEqual(1, json.loads(guest.encode(HelloAck(5, "a")))["v"])
        self.assertEqual(5, json.loads(guest.encode(sgm.StatusRequest()))["v"])

    def test_round_trip_between_codecs(self) -> None:
        host = ChannelCodec(HOST)
        guest = ChannelCodec(GUEST)
        host.start_session()
        got = guest.feed(host.encode(Hello(1, 1)))
        self.assertEqual(host.session, guest.session)
        self.assertEqual(Hello(1, 1), got[0].message)  # type: ignore[union-attr]
        back = host.feed(guest.encode(HelloAck(1, "x")) + guest.encode(hb.Init(500)))
        self.assertEqual([HelloAck(1, "x"), hb.Init(500)], [e.message for e in back])  # type: ignore[union-attr]

    def test_error_reply_for_every_protocol_error_encodes(self) -> None:
        codec = host_codec()
        inputs = [b"\xff\n", b"{\n", b"[]\n", frame("\ud800", "t"),
                  b'{"v":1,"seq":1,"app":"\\ud800","type":"x"}\n', b"z" * (MAX_FRAME_BYTES + 1) + b"\n",
                  frame("a" * 5000, "b")]
        for data in inputs:
            for item in codec.feed(data):
                self.assertIsInstance(item, errors.ProtocolError)
                assert isinstance(item, errors.ProtocolError)
                reply = codec.encode(Error.from_exception(item))
                self.assertLessEqual(len(reply), MAX_FRAME_BYTES + 1)
                self.assertIsInstance(guest_codec().feed(reply)[0], Envelope)
