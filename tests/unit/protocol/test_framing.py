"""FrameDecoder: chunking, oversized lines, line ends and the frame encoder."""

from __future__ import annotations

import unittest

from ha_guest.protocol import errors
from ha_guest.protocol.framing import FrameDecoder, encode_frame
from ha_guest.protocol.limits import MAX_FRAME_BYTES

FRAMES = [b'{"a":1}', b'{"b":"\xc3\xa9t\xc3\xa9"}', b"x" * 300, b"{}"]
STREAM = b"".join(f + b"\n" for f in FRAMES)


def frames_of(items):
    """Return the frames of a feed() result, failing on errors."""
    for item in items:
        if isinstance(item, errors.ProtocolError):
            raise AssertionError("unexpected error %s" % item)
    return list(items)


class TestChunking(unittest.TestCase):
    """However the stream is cut into reads, the same frames come out."""

    def test_every_split_point(self) -> None:
        for cut in range(1, len(STREAM)):
            decoder = FrameDecoder()
            out = frames_of(decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:]))
            self.assertEqual(FRAMES, out, "split at %d" % cut)
            self.assertEqual(0, decoder.pending_bytes)

    def test_every_pair_of_split_points(self) -> None:
        stream = STREAM[:40] + b"\n" + STREAM[-20:]
        expected = frames_of(FrameDecoder().feed(stream))
        for first in range(1, len(stream)):
            for second in range(first, len(stream)):
                decoder = FrameDecoder()
                out = decoder.feed(stream[:first]) + decoder.feed(stream[first:second]) + decoder.feed(stream[second:])
                self.assertEqual(expected, out)

    def test_byte_by_byte(self) -> None:
        decoder = FrameDecoder()
        out = []
        for i in range(len(STREAM)):
            out.extend(decoder.feed(STREAM[i:i + 1]))
        self.assertEqual(FRAMES, frames_of(out))
        self.assertEqual(len(FRAMES), decoder.frames_decoded)

    def test_many_frames_in_one_read(self) -> None:
        frames = [b'{"n":%d}' % i for i in range(500)]
        out = FrameDecoder().feed(b"".join(f + b"\n" for f in frames))
        self.assertEqual(frames, out)

    def test_two_frames_in_one_read_both_delivered(self) -> None:
        # The bug of an earlier implementation: the second frame of a read was lost.
        self.assertEqual([b"{}", b"[]"], FrameDecoder().feed(b"{}\n[]\n"))

    def test_partial_frame_is_held(self) -> None:
        decoder = FrameDecoder()
        self.assertEqual([], decoder.feed(b'{"a":'))
        self.assertEqual(5, decoder.pending_bytes)
        self.assertEqual([b'{"a":1}'], decoder.feed(b"1}\n"))

    def test_empty_read(self) -> None:
        decoder = FrameDecoder()
        self.assertEqual([], decoder.feed(b""))
        decoder.feed(b"ab")
        self.assertEqual([], decoder.feed(b""))
        self.assertEqual([b"abc"], decoder.feed(b"c\n"))

    def test_reset_forgets_partial_frame(self) -> None:
        decoder = FrameDecoder()
        decoder.feed(b'{"half":')
        decoder.reset()
        self.assertEqual(0, decoder.pending_bytes)
        self.assertEqual([b"{}"], decoder.feed(b"{}\n"))

    def test_reset_ends_skipping(self) -> None:
        decoder = FrameDecoder(max_frame_bytes=10)
        decoder.feed(b"y" * 20)
        decoder.reset()
        self.assertEqual([b"{}"], decoder.feed(b"{}\n"))


class TestLineEnds(unittest.TestCase):
    """CR before LF is stripped, blank lines carry nothing."""

    def test_crlf(self) -> None:
        self.assertEqual([b"{}", b"[]"], FrameDecoder().feed(b"{}\r\n[]\r\n"))

    def test_crlf_split_between_cr_and_lf(self) -> None:
        decoder = FrameDecoder()
        self.assertEqual([], decoder.feed(b"{}\r"))
        self.assertEqual([b"{}"], decoder.feed(b"\n"))

    def test_only_one_cr_stripped(self) -> None:
        self.assertEqual([b"{}\r"], FrameDecoder().feed(b"{}\r\r\n"))

    def test_inner_cr_kept(self) -> None:
        self.assertEqual([b"{\r}"], FrameDecoder().feed(b"{\r}\n"))

    def test_blank_lines_ignored(self) -> None:
        decoder = FrameDecoder()
        self.assertEqual([b"{}"], decoder.feed(b"\n\n\r\n \t \n{}\n\x0b\x0c\n"))
        self.assertEqual(1, decoder.frames_decoded)


class TestOversized(unittest.TestCase):
    """Lines over the limit are dropped once, the buffer stays bounded, and the decoder resyncs."""

    def assertOversized(self, item: object) -> None:
        self.assertIsInstance(item, errors.ProtocolError)
        assert isinstance(item, errors.ProtocolError)
        self.assertEqual(errors.FRAME_TOO_LARGE, item.code)
        self.assertIsNone(item.ref_seq)

    def test_exactly_at_limit_accepted(self) -> None:
        line = b"z" * MAX_FRAME_BYTES
        self.assertEqual([line], FrameDecoder().feed(line + b"\n"))

    def test_one_byte_over_limit(self) -> None:
        out = FrameDecoder().feed(b"z" * (MAX_FRAME_BYTES + 1) + b"\n{}\n")
        self.assertEqual(2, len(out))
        self.assertOversized(out[0])
        self.assertEqual(b"{}", out[1])

    def test_cr_counts_towards_limit(self) -> None:
        out = FrameDecoder().feed(b"z" * MAX_FRAME_BYTES + b"\r\n")
        self.assertEqual(1, len(out))
        self.assertOversized(out[0])

    def test_reported_before_newline_arrives(self) -> None:
        decoder = FrameDecoder()
        self.assertEqual([], decoder.feed(b"q" * MAX_FRAME_BYTES))
        out = decoder.feed(b"q")
        self.assertEqual(1, len(out))
        self.assertOversized(out[0])
        self.assertEqual(0, decoder.pending_bytes)

    def test_never_ending_line_reported_once_and_bounded(self) -> None:
        decoder = FrameDecoder()
        errors_seen = []
        for _ in range(200):
            errors_seen.extend(decoder.feed(b"w" * 1000))
            self.assertLessEqual(decoder.pending_bytes, MAX_FRAME_BYTES)
        self.assertEqual(1, len(errors_seen))
        self.assertEqual(1, decoder.frames_oversized)
        # The frame after the next newline is decoded normally.
        self.assertEqual([b"{}"], decoder.feed(b"w\n{}\n"))

    def test_resync_when_newline_in_next_read(self) -> None:
        decoder = FrameDecoder()
        first = decoder.feed(b"o" * (MAX_FRAME_BYTES + 10))
        self.assertOversized(first[0])
        self.assertEqual([b'{"next":1}'], decoder.feed(b"ooo\n" + b'{"next":1}\n'))

    def test_oversized_split_byte_by_byte(self) -> None:
        decoder = FrameDecoder(max_frame_bytes=16)
        stream = b"a" * 40 + b"\n" + b"{}\n"
        out = []
        for i in range(len(stream)):
            out.extend(decoder.feed(stream[i:i + 1]))
            self.assertLessEqual(decoder.pending_bytes, 16)
        self.assertEqual(2, len(out))
        self.assertOversized(out[0])
        self.assertEqual(b"{}", out[1])

    def test_several_oversized_lines(self) -> None:
        decoder = FrameDecoder(max_frame_bytes=8)
        out = decoder.feed(b"123456789\n{}\n123456789012\n[]\n")
        self.assertEqual(4, len(out))
        self.assertOversized(out[0])
        self.assertEqual(b"{}", out[1])
        self.assertOversized(out[2])
        self.assertEqual(b"[]", out[3])
        self.assertEqual(2, decoder.frames_oversized)


class TestEncodeFrame(unittest.TestCase):
    """encode_frame appends the newline and refuses what a receiver would drop."""

    def test_appends_newline(self) -> None:
        self.assertEqual(b"{}\n", encode_frame(b"{}"))

    def test_limit(self) -> None:
        self.assertEqual(MAX_FRAME_BYTES + 1, len(encode_frame(b"a" * MAX_FRAME_BYTES)))
        with self.assertRaises(errors.ProtocolError) as ctx:
            encode_frame(b"a" * (MAX_FRAME_BYTES + 1))
        self.assertEqual(errors.FRAME_TOO_LARGE, ctx.exception.code)

    def test_rejects_newline(self) -> None:
        with self.assertRaises(ValueError):
            encode_frame(b"{}\n{}")
