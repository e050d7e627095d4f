"""Newline-delimited framing: an incremental decoder and the frame encoder."""

from __future__ import annotations

from typing import List, Union

from ha_guest.protocol import errors
from ha_guest.protocol.limits import MAX_FRAME_BYTES

NEWLINE = b"\n"

#: What the decoder yields: a complete frame (without newline) or an error.
FrameOrError = Union[bytes, errors.ProtocolError]


class FrameDecoder:
    """Split a byte stream into frames, however the stream was chunked.

    Every complete line is returned, so several frames in one read are never
    lost; a frame split across reads is held until its newline arrives. A line
    longer than ``max_frame_bytes`` is dropped as a whole: the decoder reports
    it once and skips bytes until the next newline, where it resynchronises.
    The buffer never holds more than ``max_frame_bytes`` bytes.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._skipping = False
        self.frames_decoded = 0
        self.frames_oversized = 0

    def feed(self, data: bytes) -> List[FrameOrError]:
        """Consume bytes and return the frames and errors they complete."""
        out: List[FrameOrError] = []
        start = 0
        end = len(data)
        while start < end:
            newline = data.find(NEWLINE, start)
            if newline < 0:
                self._append(data[start:], out)
                break
            self._append(data[start:newline], out)
            self._finish_line(out)
            start = newline + 1
        return out

    def _append(self, chunk: bytes, out: List[FrameOrError]) -> None:
        if self._skipping or not chunk:
            return
        if len(self._buffer) + len(chunk) > self.max_frame_bytes:
            # Report as soon as the limit is crossed so a sender that never
            # sends a newline cannot make us buffer without bound.
            self._buffer.clear()
            self._skipping = True
            self.frames_oversized += 1
            out.append(
                errors.ProtocolError(
                    errors.FRAME_TOO_LARGE,
                    "frame longer than %d bytes dropped" % self.max_frame_bytes,
                )
            )
            return
        self._buffer += chunk

    def _finish_line(self, out: List[FrameOrError]) -> None:
        if self._skipping:
            self._skipping = False
            return
        line = bytes(self._buffer)
        self._buffer.clear()
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            # Blank lines are keepalives and carry nothing.
            self.frames_decoded += 1
            out.append(line)

    @property
    def pending_bytes(self) -> int:
        """Bytes held for a frame whose newline has not arrived yet."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget any partial frame, e.g. when the connection is replaced."""
        self._buffer.clear()
        self._skipping = False


def encode_frame(payload: bytes, max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """Terminate one serialised frame with a newline after checking its size."""
    if len(payload) > max_frame_bytes:
        raise errors.ProtocolError(
            errors.FRAME_TOO_LARGE,
            "frame of %d bytes exceeds %d" % (len(payload), max_frame_bytes),
        )
    if NEWLINE in payload:
        raise ValueError("a frame must not contain a newline")
    return payload + NEWLINE
