"""The hot path of heartbeating: a preformatted challenge, a healthy-answer shortcut, one read buffer.

At a thousand guests and 100 ms the compute agent sends ten thousand
challenges and reads ten thousand answers a second; everything else is rare.
What is here keeps those two cheap (measured with tools/bench_compute.py):

* the challenge frame is formatted once per session, leaving only seq and
  nonce to fill in (the envelope encoder costs a dict, a dataclass and a
  json.dumps per frame);
* a healthy answer written exactly the way the reference guest agent
  writes it is recognised by one regular expression; every other frame goes
  through the full decoder of ha_guest.protocol, with the same outcome;
* the loop reads every channel into one shared buffer: asyncio's default
  read allocates 256 KiB per read, which costs more system time than all
  the rest of the read path.
"""

from __future__ import annotations

import re

from ha_guest.protocol import limits

#: Bytes read from a channel at once (two frames of the largest size).
READ_BUFFER_BYTES = 2 * limits.MAX_FRAME_BYTES + 2

#: Match a healthy response as the reference agent encodes it; groups: v, seq, session, nonce.
#: seq stops at 15 digits (below 2**53) and has no leading zero; the nonce is a token, so it
#: holds no JSON escape; anything else does not match and takes the full decoder.
healthy_response = re.compile(
    rb'\{"v":([1-9][0-9]{0,4}),"app":"heartbeat","type":"response","seq":(0|[1-9][0-9]{0,14}),'
    rb'"session":"([0-9a-f]{1,64})","data":\{"nonce":"([A-Za-z0-9._:@-]{1,%d})",'
    rb'"health":"healthy","reason":""\}\}' % limits.MAX_TOKEN_CHARS).fullmatch


def challenge_template(version: int, session: str) -> bytes:
    """Return the challenge frame of a session with ``%d`` for seq and ``%s`` for the nonce."""
    return ('{"v":%d,"app":"heartbeat","type":"challenge","seq":%%d,"session":"%s","data":{"nonce":"%%s"}}\n'
            % (version, session)).encode("ascii")


def broadcast_deliver_data(sender: str, payload_b64: str) -> bytes:
    """Return the encoded data object of a broadcast_deliver (UUID and base64: nothing to escape)."""
    return ('{"sender":"%s","payload":"%s"}' % (sender, payload_b64)).encode("ascii")


def broadcast_deliver_frame(version: int, seq: int, session: str, data: bytes) -> bytes:
    """Return a broadcast_deliver frame around pre-encoded ``data``, byte for byte what the encoder writes.

    A delivery goes to several guests with the same data and another seq and
    session each: encoding the 4 KB of data once saves most of the work.
    """
    return b'{"v":%d,"app":"sgm","type":"broadcast_deliver","seq":%d,"session":"%s","data":%s}\n' % (
        version, seq, session.encode("ascii"), data)


def read_buffer(size: int = READ_BUFFER_BYTES) -> memoryview:
    """A buffer that every channel of one event loop may share: the loop reads one socket at a time."""
    return memoryview(bytearray(size))

