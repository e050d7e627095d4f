"""Guest text in host log lines: escaped, truncated, rate-limited; hostile inputs included."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import testtools

from ha_guest.compute.log_text import INCIDENT_LINES_BURST, MAX_CHARS, GuestLogs, clean
from ha_guest.protocol import errors
from ha_guest.protocol.messages import Error
from tests.unit.compute.base import AsyncTestCase, ChannelHarness, FakeGuest, wait_until

HOSTILE = [
    "line one\nFAULT forged line\r\n",
    "\x1b[2J\x1b[31mred\x1b[0m",
    "bidi \u202eevil\u202c and zero width \u200b",
    "nul \x00 bell \x07 del \x7f c1 \x85",
    "lone surrogate \udc80",
    "back\\slash \\n not a newline",
]


def safe(text: str) -> bool:
    return text.isprintable() and "\n" not in text and "\x1b" not in text


class TestClean(testtools.TestCase):

    def test_hostile_text_is_one_printable_line(self) -> None:
        for text in HOSTILE:
            cleaned = clean(text)
            self.assertTrue(safe(cleaned), repr(cleaned))
        self.assertEqual("line one\\nFAULT forged line\\r\\n", clean(HOSTILE[0]))
        self.assertEqual("\\x1b[2J\\x1b[31mred\\x1b[0m", clean(HOSTILE[1]))
        self.assertIn("\\u202e", clean(HOSTILE[2]))
        self.assertIn("\\udc80", clean(HOSTILE[4]))
        # A typed backslash is doubled: an escape in the log always means a control character.
        self.assertEqual("back\\\\slash \\\\n not a newline", clean(HOSTILE[5]))

    def test_plain_text_unchanged(self) -> None:
        for text in ("", "check disk failed: /var 97% full", "état dégradé", "名前"):
            self.assertEqual(text, clean(text))

    def test_megabyte_is_truncated_quickly(self) -> None:
        huge = "\n\x1b" * 500_000
        started = time.perf_counter()
        for _ in range(100):
            cleaned = clean(huge)
        self.assertLess(time.perf_counter() - started, 1.0)  # generous: ~100 us each on a slow machine
        self.assertTrue(safe(cleaned))
        self.assertLessEqual(len(cleaned), MAX_CHARS + 30)
        self.assertTrue(cleaned.endswith("...(1000000 chars)"), cleaned[-40:])

    def test_bytes_and_other_values(self) -> None:
        self.assertEqual("ok\\n", clean(b"ok\n"))
        self.assertTrue(safe(clean(b"\xff\xfe\x1b" * 1_000_000)))
        self.assertTrue(clean(b"x" * 1000).endswith("...(1000 bytes)"))
        self.assertEqual("None", clean(None))
        self.assertEqual("12", clean(12))

        class Nasty:
            def __str__(self) -> str:
                raise RuntimeError("no")

        self.assertEqual("<unprintable Nasty>", clean(Nasty()))
        self.assertEqual(errors.INVALID_JSON + ": x\\ny", clean(errors.ProtocolError(errors.INVALID_JSON, "x\ny")))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestGuestLogs(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.logger = logging.getLogger("test.log_text")
        self.logs = GuestLogs(self.logger, self.clock, period=10.0)

    def test_topic_lines_one_per_period_per_instance_and_topic(self) -> None:
        with self.assertLogs(self.logger, logging.INFO) as captured:
            for _ in range(1000):
                self.clock.now += 0.001
                self.logs.line("a", "exit", logging.INFO, "exit %s", 1)
                self.logs.line("a", "flap", logging.INFO, "flap")
                self.logs.line("b", "exit", logging.INFO, "exit b")
        self.assertEqual(3, len(captured.records))

    def test_incident_lines_pass_until_the_rate_then_one_per_period(self) -> None:
        with self.assertLogs(self.logger, logging.INFO) as captured:
            for _ in range(1000):
                self.clock.now += 0.001
                self.logs.incident("a", logging.WARNING, "FAULT")
        self.assertEqual(INCIDENT_LINES_BURST + 1, len(captured.records))
        self.logs.forget("a")
        with self.assertLogs(self.logger, logging.INFO) as captured:
            self.logs.incident("a", logging.WARNING, "FAULT")
        self.assertEqual(1, len(captured.records))


class TestChannelLogLines(AsyncTestCase):
    """What a hostile guest's frames put in the channel's log lines."""

    def flood(self, frame: Callable[[FakeGuest, int], None]) -> Any:
        async def scenario() -> Any:
            path = self.socket_path()
            guest = await FakeGuest(path).start()
            harness = ChannelHarness(path)
            harness.channel.start()
            await wait_until(lambda: harness.channel.hello_acked, what="hello_ack")
            with self.assertLogs(logging.getLogger("ha_guest.compute.channel"), logging.WARNING) as captured:
                for n in range(30):
                    frame(guest, n)
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.1)
            await harness.close()
            await guest.stop()
            return captured

        captured = self.run_async(scenario())
        self.assertEqual(1, len(captured.records), captured.output)  # one line per 10 s per channel
        text = captured.records[0].getMessage()
        self.assertTrue(safe(text), repr(text))
        self.assertLess(len(text), 3 * MAX_CHARS + 200)
        return text

    def test_error_detail_is_escaped(self) -> None:
        text = self.flood(lambda guest, n: guest.send(Error("internal", "detail\nFORGED %d \x1b[0m" % n, None)))
        self.assertIn("guest reported internal: detail\\nFORGED 0 \\x1b[0m", text)

    def test_bad_frame_text_is_escaped(self) -> None:
        text = self.flood(lambda guest, n: guest.send_raw(b"\x1b[31m{not json " + b"x" * 100_000 + b"\r\n"))
        self.assertIn("bad frame from guest", text)
