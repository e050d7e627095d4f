"""Envelope decode/encode: field rules, check order, ref_seq and the wire form."""

from __future__ import annotations

import json
import unittest
from typing import Any, Tuple

from ha_guest.protocol import Envelope, decode, encode, encode_message, errors, sgm
from ha_guest.protocol import heartbeat as hb
from ha_guest.protocol.fields import MAX_SAFE_INT
from ha_guest.protocol.limits import MAX_FRAME_BYTES
from ha_guest.protocol.messages import Hello, HelloRequest

S = "3f9a0c5e7b21d864"


def raw(**obj: object) -> bytes:
    return json.dumps(obj).encode()


class TestDecode(unittest.TestCase):
    """decode() validates in the documented order."""

    def code_of(self, line: bytes) -> errors.ProtocolError:
        with self.assertRaises(errors.ProtocolError) as ctx:
            decode(line)
        return ctx.exception

    def test_valid(self) -> None:
        env = decode(raw(v=1, app="heartbeat", type="init", seq=3, session=S, data={"interval_ms": 100}))
        self.assertEqual(Envelope(hb.Init(100), 3, S, 1), env)
        self.assertEqual(("heartbeat", "init"), (env.app, env.type))

    def test_absent_session_and_data(self) -> None:
        env = decode(raw(v=1, app="base", type="hello_request", seq=0))
        self.assertEqual(Envelope(HelloRequest(), 0, None, 1), env)

    def test_too_long_line(self) -> None:
        self.assertEqual(errors.FRAME_TOO_LARGE, self.code_of(b" " * (MAX_FRAME_BYTES + 1)).code)

    def test_ref_seq_from_step_four_on(self) -> None:
        # seq readable: every later error names it.
        cases = [
            (dict(v=2, app="x", type="y", seq=4), errors.UNSUPPORTED_VERSION),
            (dict(v="1", app="x", type="y", seq=4), errors.INVALID_ENVELOPE),
            (dict(v=1, app=1, type="y", seq=4), errors.INVALID_ENVELOPE),
            (dict(v=1, app="x", type="y", seq=4, session=""), errors.INVALID_ENVELOPE),
            (dict(v=1, app="x", type="y", seq=4, data=[]), errors.INVALID_ENVELOPE),
            (dict(v=1, app="x", type="y", seq=4), errors.UNKNOWN_TYPE),
            (dict(v=1, app="heartbeat", type="init", seq=4, data={}), errors.INVALID_MESSAGE),
        ]
        for obj, code in cases:
            exc = self.code_of(raw(**obj))
            self.assertEqual((code, 4), (exc.code, exc.ref_seq), obj)

    def test_no_ref_seq_when_seq_bad(self) -> None:
        for seq in (-1, "4", True, 4.0, None, MAX_SAFE_INT + 1):
            exc = self.code_of(raw(v=1, app="base", type="hello_request", seq=seq))
            self.assertEqual((errors.INVALID_ENVELOPE, None), (exc.code, exc.ref_seq))

    def test_version_checked_before_seq(self) -> None:
        self.assertEqual(errors.UNSUPPORTED_VERSION, self.code_of(raw(v=9, seq="bad")).code)

    def test_seq_checked_before_app(self) -> None:
        self.assertIn("seq", self.code_of(raw(v=1, seq=-1, app=5)).detail)

    def test_data_checked_before_type(self) -> None:
        self.assertEqual(errors.INVALID_ENVELOPE, self.code_of(raw(v=1, seq=1, app="no", type="no", data=1)).code)

    def test_supported_range_argument(self) -> None:
        line = raw(v=2, app="sgm", type="status_request", seq=1, session=S)
        self.assertEqual(2, decode(line, 1, 2).version)
        self.assertEqual(errors.UNSUPPORTED_VERSION, self.code_of(line).code)

    def test_session_limits(self) -> None:
        self.assertEqual("s" * 64, decode(raw(v=1, app="sgm", type="status_request", seq=1, session="s" * 64)).session)
        sessions: Tuple[Any, ...] = ("", "s" * 65, 5, [], {})
        for session in sessions:
            exc = self.code_of(raw(v=1, app="sgm", type="status_request", seq=1, session=session))
            self.assertEqual(errors.INVALID_ENVELOPE, exc.code)

    def test_strict_json(self) -> None:
        for bad in (b'{"v":NaN}', b'{"v":1,"x":Infinity}', b'{"v":-Infinity}', b"\xef\xbb\xbf{}"):
            self.assertEqual(errors.INVALID_JSON, self.code_of(bad).code, bad)

    def test_lone_surrogates_rejected_pairs_accepted(self) -> None:
        base = '{"v":1,"app":"heartbeat","type":"exit","seq":1,"session":"s","data":{"reason":"%s"}}'
        for bad in ("\\ud800", "\\uDBFF", "\\udc00x", "\\ude00\\ud83d", "a\\ud83d"):
            self.assertEqual(errors.INVALID_JSON, self.code_of((base % bad).encode()).code, bad)
        for good, text in (("\\ud83d\\ude00", "\U0001f600"), ("\\\\ud800", "\\ud800"), ("\\u00e9", "\u00e9"),
                           ("\\uD7FF", "\ud7ff"), ("\\uE000", "\ue000")):
            self.assertEqual(hb.Exit(text), decode((base % good).encode()).message, good)

    def test_huge_integer(self) -> None:
        exc = self.code_of(b'{"v":1,"seq":' + b"9" * 5000 + b"}")
        self.assertIn(exc.code, (errors.INVALID_JSON, errors.INVALID_ENVELOPE))

    def test_duplicate_member_last_wins(self) -> None:
        line = b'{"v":2,"v":1,"app":"sgm","type":"status_request","seq":1,"session":"s"}'
        self.assertEqual(1, decode(line).version)


class TestEncode(unittest.TestCase):
    """The wire form: member order, compact separators, UTF-8."""

    def test_exact_bytes(self) -> None:
        self.assertEqual(
            b'{"v":1,"app":"base","type":"hello","seq":1,"session":"3f9a0c5e7b21d864",'
            b'"data":{"version_min":1,"version_max":1}}\n',
            encode_message(Hello(1, 1), 1, S),
        )

    def test_null_session(self) -> None:
        self.assertIn(b'"session":null', encode_message(HelloRequest(), 1, None))

    def test_utf8_not_escaped(self) -> None:
        frame = encode_message(hb.Exit("\u00e9t\u00e9 \U0001f600"), 1, S)
        self.assertIn("\u00e9t\u00e9 \U0001f600".encode(), frame)

    def test_control_characters_escaped(self) -> None:
        frame = encode_message(hb.Exit("a\nb\x00"), 1, S)
        self.assertEqual(1, frame.count(b"\n"))
        self.assertEqual(hb.Exit("a\nb\x00"), decode(frame[:-1]).message)

    def test_round_trip(self) -> None:
        env = Envelope(sgm.Nack(3, "no_group", "d"), 9, S, 1)
        self.assertEqual(env, decode(encode(env)[:-1]))

    def test_oversized_message_refused(self) -> None:
        with self.assertRaises(errors.ProtocolError) as ctx:
            encode_message(hb.Exit("\x01" * 2000), 1, S)
        self.assertEqual(errors.FRAME_TOO_LARGE, ctx.exception.code)
