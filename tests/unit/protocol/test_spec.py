"""doc/source/protocol.rst and the code must agree: examples, limits, codes, names."""

from __future__ import annotations

import json
import pathlib
import re
import unittest
from typing import Dict, List, Tuple

from ha_guest.guest import localapi
from ha_guest.protocol import (
    GUEST,
    HOST,
    ChannelCodec,
    Envelope,
    constants,
    decode,
    encode,
    errors,
    fields,
    limits,
    registered_types,
    sgm,
    versioning,
)
from ha_guest.protocol import heartbeat as hb

SPEC = pathlib.Path(__file__).resolve().parents[3] / "doc" / "source" / "protocol.rst"
SESSION = "3f9a0c5e7b21d864"


def code_blocks(text: str) -> List[Tuple[str, Dict[str, str], List[str]]]:
    """Return (language, options, lines) of every code-block directive."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^\.\. code-block:: *(\S+)\s*$", lines[i])
        i += 1
        if not match:
            continue
        options: Dict[str, str] = {}
        while i < len(lines) and re.match(r"^ +:\w+:", lines[i]):
            key, _, value = lines[i].strip()[1:].partition(":")
            options[key] = value.strip()
            i += 1
        body: List[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
            body.append(lines[i][3:])
            i += 1
        blocks.append((match.group(1), options, [b for b in body if b.strip()]))
    return blocks


class TestSpec(unittest.TestCase):
    """Every example frame is byte-exact encoder output; every table matches the code."""

    text: str
    blocks: List[Tuple[str, Dict[str, str], List[str]]]

    @classmethod
    def setUpClass(cls) -> None:
        cls.text = SPEC.read_text(encoding="utf-8")
        cls.blocks = code_blocks(cls.text)

    def frames(self) -> List[str]:
        return [line for lang, opts, body in self.blocks if lang == "json" and not opts for line in body]

    def test_examples_decode_and_are_encoder_output(self) -> None:
        frames = self.frames()
        self.assertGreater(len(frames), 15)
        for line in frames:
            with self.subTest(line[:60]):
                env = decode(line.encode("utf-8"))
                self.assertEqual(line.encode("utf-8") + b"\n", encode(env))

    def test_example_for_every_message_type(self) -> None:
        shown = {(env.app, env.type) for env in (decode(f.encode()) for f in self.frames())}
        self.assertEqual(set(registered_types()), shown)

    def test_every_message_type_has_a_section(self) -> None:
        for _, type_ in registered_types():
            self.assertRegex(self.text, r"\n%s\n-{%d}\n" % (re.escape(type_), len(type_)))

    def test_transcript_plays_through_codecs(self) -> None:
        (body,) = [body for lang, _, body in self.blocks if lang == "text" and body[0].startswith("host  > ")]
        host = ChannelCodec(HOST)
        host.start_session()
        host.session = SESSION
        guest = ChannelCodec(GUEST)
        for line in body:
            who, _, frame = line.partition(" > ")
            receiver = guest if who.strip() == "host" else host
            out = receiver.feed(frame.encode() + b"\n")
            self.assertEqual(1, len(out), line)
            self.assertIsInstance(out[0], Envelope, line)
            self.assertEqual(frame.encode() + b"\n", encode(out[0]))  # type: ignore[arg-type]
        self.assertEqual(SESSION, guest.session)
        self.assertEqual(0, host.stale_frames + guest.stale_frames)

    def test_local_api_examples_are_valid_requests(self) -> None:
        (body,) = [body for _, opts, body in self.blocks if opts.get("caption") == "Local API requests"]
        ops = {localapi.parse_request(line.encode())["op"] for line in body}
        self.assertEqual(set(localapi.OPS), ops)

    def test_limits_table(self) -> None:
        rows = dict(re.findall(r"\* - ``([\w.]+)``\n +- ([^\n]+)\n", self.text))
        modules = {"": limits, "heartbeat": hb, "fields": fields, "versioning": versioning}
        expected = {name: value for name, value in vars(limits).items() if name.isupper()}
        for name, value in expected.items():
            self.assertEqual(repr(value), rows.get(name), name)
        for name in ("heartbeat.MAX_MISS_THRESHOLD", "fields.MAX_SAFE_INT", "versioning.MIN_VERSION",
                     "versioning.MAX_VERSION"):
            module, _, attr = name.partition(".")
            self.assertEqual(repr(getattr(modules[module], attr)), rows.get(name), name)

    def test_limit_values_in_prose(self) -> None:
        modules = {"": limits, "heartbeat": hb, "fields": fields, "versioning": versioning}
        mentions = re.findall(r"``([\w.]+)``\s+(?:\(|=\s+)(\d+)", self.text)
        checked = 0
        for name, shown in mentions:
            module, _, attr = name.rpartition(".")
            if module in modules and attr.isupper() and hasattr(modules[module], attr):
                self.assertEqual(getattr(modules[module], attr), int(shown), name)
                checked += 1
        self.assertGreater(checked, 10)

    def section(self, title: str) -> str:
        start = self.text.index("\n%s\n%s\n" % (title, "-" * len(title)))
        end = self.text.find("\n-----", start + len(title) + 10)
        return self.text[start:end]

    def test_every_error_code_documented(self) -> None:
        table = self.section("Error codes")
        documented = set(re.findall(r"\* - ``(\w+)``", table))
        self.assertEqual(set(errors.ERROR_CODES), documented)

    def test_every_nack_reason_documented(self) -> None:
        table = self.section("Nack reasons")
        reasons = {value for name, value in vars(sgm).items() if name.startswith("NACK_")}
        self.assertEqual(reasons, set(re.findall(r"\* - ``(\w+)``", table)))

    def test_names(self) -> None:
        self.assertIn(constants.CHANNEL_NAME, self.text)
        self.assertIn(constants.host_socket_path("<instance name>"), self.text)
        self.assertIn(constants.GUEST_DEVICE_PATH, self.text)
        self.assertIn(constants.GUEST_SYSFS_PORTS, self.text)
        self.assertIn(localapi.DEFAULT_SOCKET, self.text)

    def test_local_api_limits(self) -> None:
        section = self.text[self.text.index("The guest local API\n===="):]
        for value in (localapi.MAX_LINE_BYTES, localapi.MAX_CLIENTS, localapi.MAX_LISTENER_BACKLOG,
                      int(localapi.MAX_EXPIRY_S)):
            self.assertIn(str(value), section)
        for code in (localapi.E_BAD_REQUEST, localapi.E_TOO_LARGE, localapi.E_HOST_UNAVAILABLE, localapi.E_TIMEOUT,
                     localapi.E_NACK, localapi.E_BUSY):
            self.assertIn("``%s``" % code, section)

    def test_json_of_examples_is_compact(self) -> None:
        for line in self.frames():
            self.assertEqual(line, json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=False))
