"""Field validators used by every message type."""

from __future__ import annotations

import unittest
from typing import Any, Callable, Tuple

from ha_guest.protocol import errors, fields


class TestFields(unittest.TestCase):
    """Each helper accepts its type and range and names the field when it refuses."""

    def refused(self, func: Callable[..., Any], *args: Any) -> errors.ProtocolError:
        with self.assertRaises(errors.ProtocolError) as ctx:
            func(*args)
        self.assertEqual(errors.INVALID_MESSAGE, ctx.exception.code)
        return ctx.exception

    def test_require_int(self) -> None:
        self.assertEqual(5, fields.require_int({"n": 5}, "n", 5, 5))
        self.assertEqual(fields.MAX_SAFE_INT, fields.require_int({"n": 2**53 - 1}, "n"))
        values: Tuple[Any, ...] = (True, False, 1.0, "1", None, [], 2**53)
        for value in values:
            self.refused(fields.require_int, {"n": value}, "n")
        self.assertIn("n ", self.refused(fields.require_int, {}, "n").detail)
        self.refused(fields.require_int, {"n": 4}, "n", 5, 6)
        self.refused(fields.require_int, {"n": 7}, "n", 5, 6)

    def test_optional_int(self) -> None:
        self.assertIsNone(fields.optional_int({}, "n"))
        self.assertIsNone(fields.optional_int({"n": None}, "n"))
        self.assertEqual(0, fields.optional_int({"n": 0}, "n"))
        self.refused(fields.optional_int, {"n": -1}, "n")

    def test_require_str(self) -> None:
        self.assertEqual("abc", fields.require_str({"s": "abc"}, "s", 3))
        self.assertEqual("", fields.require_str({"s": ""}, "s", 3, allow_empty=True))
        self.refused(fields.require_str, {"s": ""}, "s", 3)
        self.refused(fields.require_str, {"s": "abcd"}, "s", 3)
        self.refused(fields.require_str, {"s": 1}, "s", 3)
        # Characters, not bytes, are counted.
        self.assertEqual("\u00e9\u00e9\u00e9", fields.require_str({"s": "\u00e9\u00e9\u00e9"}, "s", 3))

    def test_optional_str(self) -> None:
        self.assertEqual("", fields.optional_str({}, "s", 3))
        self.assertEqual("d", fields.optional_str({"s": None}, "s", 3, default="d"))
        self.refused(fields.optional_str, {"s": False}, "s", 3)

    def test_require_token(self) -> None:
        self.assertEqual("Az09._:@-", fields.require_token({"t": "Az09._:@-"}, "t", 64))
        for bad in ("", "a b", "a/b", "\u00e9", "a\n", "a\x00", "a+b", "a=b", "a,b"):
            self.refused(fields.require_token, {"t": bad}, "t", 64)
        self.refused(fields.require_token, {"t": "x" * 65}, "t", 64)

    def test_optional_token(self) -> None:
        self.assertEqual("", fields.optional_token({}, "t", 8))
        self.assertEqual("", fields.optional_token({"t": None}, "t", 8))
        self.assertEqual("", fields.optional_token({"t": ""}, "t", 8))
        self.assertEqual("running", fields.optional_token({"t": "running"}, "t", 8))
        tokens: Tuple[Any, ...] = ("no state", 0, False, [], "x" * 9)
        for bad in tokens:
            self.refused(fields.optional_token, {"t": bad}, "t", 8)

    def test_require_uuid(self) -> None:
        canonical = "6b3c1f0e-2a4d-4c8e-9f17-5d2b8a0c4e91"
        self.assertEqual(canonical, fields.require_uuid({"u": canonical.upper()}, "u"))
        self.assertEqual(canonical.replace("-", ""), fields.require_uuid({"u": canonical.replace("-", "")}, "u"))
        bad_values = ("", canonical[:-1], canonical.replace("-", "") + "\n", canonical + "0",
                      canonical.replace("6", "g", 1), "{%s}" % canonical, 5)
        for bad in bad_values:
            self.refused(fields.require_uuid, {"u": bad}, "u")

    def test_require_choice(self) -> None:
        self.assertEqual("a", fields.require_choice({"c": "a"}, "c", ("a", "b")))
        choices: Tuple[Any, ...] = ("c", "A", None, 1, ["a"])
        for bad in choices:
            self.refused(fields.require_choice, {"c": bad}, "c", ("a", "b"))

    def test_require_bool(self) -> None:
        self.assertIs(True, fields.require_bool({"b": True}, "b"))
        for bad in (1, 0, "true", None):
            self.refused(fields.require_bool, {"b": bad}, "b")

    def test_require_object(self) -> None:
        self.assertEqual({}, fields.require_object({"o": {}}, "o"))
        objects: Tuple[Any, ...] = ([], None, "x")
        for bad in objects:
            self.refused(fields.require_object, {"o": bad}, "o")
