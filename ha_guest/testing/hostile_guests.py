"""Hostile guests in one helper process: bench_guests' protocol guests that also flood their channel.

Each guest binds ``<uuid>.sock`` like QEMU and speaks the protocol as
ha_guest.testing.bench_guests does (registers, answers challenges); on
command it also writes ``--chunk-bytes`` of junk ``--rate-hz`` times a
second on top of its answers. What it writes is held in its own send buffer
when the compute agent stops reading; past ``HELD_LIMIT`` bytes a chunk is
skipped and counted as held (the way a virtio-serial port blocks its guest).

Driven over stdin/stdout, one JSON object per line:

* printed at start: ``{"ready": [uuid, ...]}``
* ``flood KIND UUID...`` (KIND: lf, junk, partial, oversized, badutf8, deepjson, hugeint, off, or one of
  ha_guest.testing.hostile_sessions' kinds) -> ``{"flooding": {uuid: kind}}``
* ``hang UUID...`` / ``resume UUID...``: stop / start answering -> ``{"hung"|"resumed": {uuid: wall time}}``
* ``status`` -> ``{"registered": n, "answered": n, "connections": n, "written": bytes, "held": chunks}``
* end of stdin: exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from typing import Dict, List, Optional

from ha_guest.testing import hostile_sessions
from ha_guest.testing.bench_guests import Guest, GuestConnection, commands, hang_or_resume, reply, status_counts

#: Bytes a flooding guest lets wait in its send buffer before it skips chunks.
HELD_LIMIT = 1 << 20

# Lines that are nearly frames: each one costs a decoder as much as it can under the frame limit (8 KiB).
_BAD_UTF8 = b'{"v":1,"app":"heartbeat","type":"response","seq":1,"data":{"nonce":"\xff\xfe\xc0\x80\xed\xa0\x80"}}\n'
_DEEP_JSON = b'[' * 4000 + b']' * 4000 + b'\n'
_HUGE_INT = b'{"v":1,"app":"heartbeat","type":"response","seq":' + b'9' * 4200 + b',"data":{}}\n'

#: What each kind of flood writes, as a function of the chunk size.
KINDS = {
    'lf': lambda size: b'\n' * size,  # blank lines only
    'junk': lambda size: b'junk\n' * (size // 5),  # short lines that are not JSON
    'partial': lambda size: b'x' * size,  # one line that never ends
    'oversized': lambda size: (b'y' * 9000 + b'\n') * max(1, size // 9001),  # lines over the frame limit
    'badutf8': lambda size: _BAD_UTF8 * max(1, size // len(_BAD_UTF8)),  # frames that are not UTF-8
    'deepjson': lambda size: _DEEP_JSON * max(1, size // len(_DEEP_JSON)),  # 4000 nested arrays a line
    'hugeint': lambda size: _HUGE_INT * max(1, size // len(_HUGE_INT)),  # a 4200-digit seq a line
}


class HostileGuest(Guest):
    """A bench guest with a flood kind and the bytes it wrote."""

    def __init__(self, instance_uuid: str, interval_ms: int) -> None:
        super().__init__(instance_uuid, interval_ms)
        self.flood: Optional[str] = None
        self.connection: Optional[GuestConnection] = None
        self.written = 0
        self.held = 0


class HostileConnection(GuestConnection):
    """A connection its guest can flood."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(self.guest, HostileGuest)
        self.guest.connection = self

    def data_received(self, data: bytes) -> None:
        if getattr(self.guest, 'flood', None) == 'flap':  # hostile_sessions: healthy and unhealthy answers in turn
            hostile_sessions.flap_template(self)
        super().data_received(data)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        assert isinstance(self.guest, HostileGuest)
        if self.guest.connection is self:
            self.guest.connection = None
        self.transport = None


async def _flood(guests: Dict[str, HostileGuest], chunk_bytes: int, rate_hz: float) -> None:
    chunks = {kind: make(chunk_bytes) for kind, make in KINDS.items()}
    while True:
        await asyncio.sleep(1.0 / rate_hz)
        for guest in guests.values():
            conn = guest.connection
            if guest.flood not in chunks or conn is None or conn.transport is None or conn.transport.is_closing():
                continue
            if conn.transport.get_write_buffer_size() > HELD_LIMIT:
                guest.held += 1  # the host is not reading: so much the better
                continue
            chunk = chunks[guest.flood]
            conn.transport.write(chunk)
            guest.written += len(chunk)


async def serve(folder: str, count: int, interval_ms: int, chunk_bytes: int, rate_hz: float) -> None:
    """Bind ``count`` hostile guests in ``folder``, then follow the commands on stdin until it closes."""
    loop = asyncio.get_running_loop()
    guests: Dict[str, HostileGuest] = {}
    for _ in range(count):
        guest = HostileGuest(str(uuid.uuid4()), interval_ms)
        guests[guest.instance_uuid] = guest
        path = os.path.join(folder, '%s.sock' % guest.instance_uuid)
        await loop.create_unix_server(lambda guest=guest: HostileConnection(guest), path,  # type: ignore[misc]
                                      backlog=1)
    flooding = loop.create_task(_flood(guests, chunk_bytes, rate_hz))
    pacing = loop.create_task(hostile_sessions.run(guests, chunk_bytes, rate_hz, HELD_LIMIT))
    reply({'ready': list(guests)})
    try:
        async for command, args in commands():
            if command == 'status':
                reply(dict(status_counts(guests), written=sum(g.written for g in guests.values()),
                           held=sum(g.held for g in guests.values())))
            elif command == 'flood' and args and (args[0] in KINDS or args[0] in hostile_sessions.KINDS
                                                  or args[0] == 'off'):
                for instance in args[1:]:
                    guests[instance].flood = None if args[0] == 'off' else args[0]
                    if args[0] in hostile_sessions.MUTE:
                        guests[instance].hung = True  # answers would end the attack (slowloris) or are it
                reply({'flooding': {instance: args[0] for instance in args[1:]}})
            elif command in ('hang', 'resume'):
                reply(hang_or_resume(guests, command, args))
            else:
                reply({'error': 'unknown command %r' % ' '.join([command] + args)})
    finally:
        flooding.cancel()
        pacing.cancel()


def main(argv: Optional[List[str]] = None) -> int:
    """Command line of one helper process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--folder', required=True)
    parser.add_argument('--guests', type=int, default=1)
    parser.add_argument('--interval-ms', type=int, default=100)
    parser.add_argument('--chunk-bytes', type=int, default=65536)
    parser.add_argument('--rate-hz', type=float, default=16.0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.folder, args.guests, args.interval_ms, args.chunk_bytes, args.rate_hz))
    return 0


if __name__ == '__main__':
    sys.exit(main())
