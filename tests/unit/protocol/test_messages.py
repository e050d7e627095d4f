"""Message types: registry, directions, field rules and worst-case frame sizes."""

from __future__ import annotations

import unittest
from typing import List

from ha_guest.protocol import (
    Error,
    Hello,
    HelloAck,
    HelloRequest,
    Message,
    encode_message,
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
    MAX_REASON_CHARS,
    MAX_TOKEN_CHARS,
)
from ha_guest.protocol.messages import BOTH_WAYS, GUEST_TO_HOST, HOST_TO_GUEST

EXPECTED_TYPES = {
    ("base", "hello"): HOST_TO_GUEST,
    ("base", "hello_ack"): GUEST_TO_HOST,
    ("base", "hello_request"): GUEST_TO_HOST,
    ("base", "error"): BOTH_WAYS,
    ("heartbeat", "init"): GUEST_TO_HOST,
    ("heartbeat", "init_ack"): HOST_TO_GUEST,
    ("heartbeat", "challenge"): HOST_TO_GUEST,
    ("heartbeat", "response"): GUEST_TO_HOST,
    ("heartbeat", "exit"): GUEST_TO_HOST,
    ("heartbeat", "exit_ack"): HOST_TO_GUEST,
    ("sgm", "broadcast"): GUEST_TO_HOST,
    ("sgm", "broadcast_deliver"): HOST_TO_GUEST,
    ("sgm", "notification"): HOST_TO_GUEST,
    ("sgm", "status_request"): GUEST_TO_HOST,
    ("sgm", "status_reply"): HOST_TO_GUEST,
    ("sgm", "nack"): HOST_TO_GUEST,
}

TOKEN = "T" * MAX_TOKEN_CHARS
UUID = "01234567-89ab-cdef-0123-456789abcdef"
# A control character is escaped as \u0001 (6 bytes): the costliest character.
TEXT = "\x01" * MAX_REASON_CHARS


def worst_case_messages() -> List[Message]:
    """Every message type with every field at its limit, in its largest form."""
    member = sgm.MemberStatus(UUID, TOKEN, TOKEN, False)
    payload = b"\xff" * MAX_BROADCAST_BYTES
    return [
        Hello(65535, 65535),
        HelloAck(65535, "\x01" * MAX_TOKEN_CHARS),
        HelloRequest(),
        Error(TOKEN, TEXT, MAX_SAFE_INT),
        hb.Init(60000),
        hb.InitAck(60000, hb.MAX_MISS_THRESHOLD),
        hb.Challenge(TOKEN),
        hb.Response(TOKEN, hb.UNHEALTHY, TEXT),
        hb.Exit(TEXT),
        hb.ExitAck(),
        sgm.Broadcast(payload),
        sgm.BroadcastDeliver(UUID, payload),
        sgm.Notification(UUID, TOKEN, TOKEN, TOKEN),
        sgm.StatusRequest(),
        sgm.StatusReply(MAX_SAFE_INT, (member,) * MAX_GROUP_MEMBERS),
        sgm.Nack(MAX_SAFE_INT, TOKEN, TEXT),
    ]


class TestRegistry(unittest.TestCase):
    """The registry holds exactly the documented types and directions."""

    def test_types_and_directions(self) -> None:
        got = {key: cls.DIRECTION for key, cls in registered_types().items()}
        self.assertEqual(EXPECTED_TYPES, got)

    def test_register_twice_refused(self) -> None:
        from ha_guest.protocol.messages import register

        with self.assertRaises(ValueError):
            register(Hello)


class TestWorstCase(unittest.TestCase):
    """Every valid message fits in one frame, so a sender never has to split or drop one."""

    def test_every_type_covered(self) -> None:
        self.assertEqual(set(EXPECTED_TYPES), {(m.APP, m.TYPE) for m in worst_case_messages()})

    def test_fits_in_a_frame_and_decodes(self) -> None:
        from ha_guest.protocol import decode

        for message in worst_case_messages():
            frame = encode_message(message, MAX_SAFE_INT, "s" * MAX_TOKEN_CHARS)
            self.assertLessEqual(len(frame) - 1, MAX_FRAME_BYTES, message.TYPE)
            self.assertEqual(message, decode(frame[:-1]).message)


class TestFieldRules(unittest.TestCase):
    """Rules not covered by the vectors."""

    def test_error_from_exception_truncates_detail(self) -> None:
        exc = errors.ProtocolError(errors.INVALID_JSON, "x" * 1000, 5)
        self.assertEqual(Error(errors.INVALID_JSON, "x" * MAX_REASON_CHARS, 5), Error.from_exception(exc))

    def test_broadcast_constructor_checks_size(self) -> None:
        sgm.Broadcast(b"\0" * MAX_BROADCAST_BYTES)
        with self.assertRaises(errors.ProtocolError):
            sgm.Broadcast(b"\0" * (MAX_BROADCAST_BYTES + 1))

    def test_member_status_helper_validates(self) -> None:
        expected = sgm.MemberStatus(UUID, "active", "", True)
        self.assertEqual(expected, sgm.member_status(UUID.upper(), "active", "", True))
        with self.assertRaises(errors.ProtocolError):
            sgm.member_status("nope", "active")
        with self.assertRaises(errors.ProtocolError):
            sgm.member_status(UUID, "active", "no state")

    def test_status_reply_member_limit(self) -> None:
        entry = {"uuid": UUID, "state": "active", "self": False}
        reply = sgm.StatusReply.from_data({"ref_seq": 1, "members": [entry] * MAX_GROUP_MEMBERS})
        self.assertEqual(MAX_GROUP_MEMBERS, len(reply.members))
        with self.assertRaises(errors.ProtocolError):
            sgm.StatusReply.from_data({"ref_seq": 1, "members": [entry] * (MAX_GROUP_MEMBERS + 1)})

    def test_payload_string_limit_matches_byte_limit(self) -> None:
        import base64

        text = base64.b64encode(b"\0" * MAX_BROADCAST_BYTES).decode()
        self.assertEqual(4068, len(text))
        self.assertEqual(MAX_BROADCAST_BYTES, len(sgm.Broadcast.from_data({"payload": text}).payload))

    def test_nack_reasons_are_tokens(self) -> None:
        for reason in (sgm.NACK_NOT_ENABLED, sgm.NACK_NO_GROUP, sgm.NACK_RATE_LIMITED, sgm.NACK_UNAVAILABLE,
                       sgm.NACK_GROUP_TOO_LARGE):
            self.assertEqual(reason, sgm.Nack.from_data({"ref_seq": 1, "reason": reason}).reason)

    def test_error_codes_are_tokens(self) -> None:
        for code in errors.ERROR_CODES:
            self.assertEqual(code, Error.from_data({"code": code}).code)

    def test_protocol_error_equality(self) -> None:
        a = errors.ProtocolError("c", "d", 1)
        self.assertEqual(a, errors.ProtocolError("c", "d", 1))
        self.assertNotEqual(a, errors.ProtocolError("c", "d", 2))
        self.assertEqual(hash(a), hash(errors.ProtocolError("c", "d", 1)))
        self.assertEqual("c: d", str(a))
