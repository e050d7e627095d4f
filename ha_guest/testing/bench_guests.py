"""Many protocol guests in one process, for the benchmark: QEMU's socket and a guest agent in one.

Each guest binds ``<uuid>.sock`` in the compute agent's discovery folder the
way QEMU binds a channel's socket, and speaks real ha_guest.protocol frames
on every connection the compute agent makes: hello -> hello_ack + init, every
challenge -> a healthy response. A ChannelCodec(GUEST) per connection decodes
and encodes; only the response to a challenge takes a shortcut (a template
cut from the codec's own encoding of a Response, once per session), so that
a thousand guests cost the benchmark machine little CPU next to the agent.

Driven over stdin/stdout, one JSON object per line:

* printed at start: ``{"ready": [uuid, ...]}``
* ``status`` -> ``{"registered": n, "answered": n, "connections": n}``
* ``hang UUID...`` -> ``{"hung": {uuid: wall time}}``: they stop answering anything
* ``resume UUID...`` -> ``{"resumed": {uuid: wall time}}``
* end of stdin: exit.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import resource
import sys
import time
import uuid
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Tuple

from ha_guest.protocol import GUEST, ChannelCodec, Envelope, Hello, HelloAck, ProtocolError, heartbeat, negotiate
from ha_guest.protocol.envelope import encode_message

AGENT_NAME = 'ha-guest-bench'
_CHALLENGE = re.compile(
    rb'\{"v":\d+,"app":"heartbeat","type":"challenge","seq":\d+,"session":"([0-9a-f]+)",'
    rb'"data":\{"nonce":"([A-Za-z0-9._:@-]+)"\}\}').fullmatch
_SEQ_MARK, _NONCE_MARK = 918273645, 'N0NCEPLACEH0LDER'


def response_template(codec: ChannelCodec) -> bytes:
    """Return the codec's own encoding of a healthy Response with ``%d`` for seq and ``%s`` for the nonce."""
    sample = encode_message(heartbeat.Response(_NONCE_MARK, heartbeat.HEALTHY, ''), _SEQ_MARK, codec.session,
                            codec.version)
    text = sample.replace(b'%', b'%%').replace(str(_SEQ_MARK).encode(), b'%d', 1)
    return text.replace(_NONCE_MARK.encode(), b'%s', 1)


class Guest:
    """One guest: its socket, its current connection and whether it is hung."""

    def __init__(self, instance_uuid: str, interval_ms: int) -> None:
        self.instance_uuid = instance_uuid
        self.interval_ms = interval_ms
        self.hung = False
        self.registered = False
        self.answered = 0
        self.connections = 0


class GuestConnection(asyncio.Protocol):
    """One connection of the compute agent to a guest's socket: a fresh codec each time."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.codec = ChannelCodec(GUEST)
        self.transport: Optional[asyncio.Transport] = None
        self.pending = b''
        self.template = b''
        self.session = b''

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.guest.connections += 1

    def data_received(self, data: bytes) -> None:
        guest = self.guest
        if guest.hung:
            return  # a frozen guest reads nothing and answers nothing
        *lines, self.pending = (self.pending + data).split(b'\n')
        out: List[bytes] = []
        for line in lines:
            match = _CHALLENGE(line)
            if match is not None and self.template and match.group(1) == self.session:
                out.append(self.template % (self.codec.next_seq(), match.group(2)))
                guest.answered += 1
                continue
            for item in self.codec.feed(line + b'\n'):
                if isinstance(item, Envelope):
                    out.extend(self._handle(item))
        if out and self.transport is not None:
            self.transport.write(b''.join(out))

    def _handle(self, env: Envelope) -> List[bytes]:
        message = env.message
        if isinstance(message, Hello):
            try:
                version = negotiate(message.version_min, message.version_max)
            except ProtocolError:
                return []
            self.codec.version = version
            first = self.codec.encode(HelloAck(version, AGENT_NAME))
            self.session = (self.codec.session or '').encode()
            self.template = response_template(self.codec)
            return [first, self.codec.encode(heartbeat.Init(self.guest.interval_ms))]
        if isinstance(message, heartbeat.InitAck):
            self.guest.registered = True
        elif isinstance(message, heartbeat.Challenge):
            self.guest.answered += 1
            return [self.codec.encode(heartbeat.Response(message.nonce, heartbeat.HEALTHY, ''))]
        return []


async def serve(folder: str, count: int, interval_ms: int) -> None:
    """Bind ``count`` guests in ``folder``, then follow the commands on stdin until it closes."""
    loop = asyncio.get_running_loop()
    guests: Dict[str, Guest] = {}
    for _ in range(count):
        guest = Guest(str(uuid.uuid4()), interval_ms)
        guests[guest.instance_uuid] = guest
        path = os.path.join(folder, '%s.sock' % guest.instance_uuid)
        # QEMU listens with a backlog of one: one host connection at a time.
        await loop.create_unix_server(lambda guest=guest: GuestConnection(guest), path, backlog=1)  # type: ignore[misc]
    stalls: collections.deque[Tuple[float, float]] = collections.deque(maxlen=1000)
    watch = asyncio.ensure_future(watch_loop(stalls))
    reply({'ready': list(guests)})
    async for command, args in commands():
        if command == 'status':
            reply(dict(status_counts(guests), stalls=list(stalls)))
        elif command in ('hang', 'resume'):
            reply(hang_or_resume(guests, command, args))
        else:
            reply({'error': 'unknown command %r' % command})
    watch.cancel()


#: A helper loop iteration at least this late is a stall of the helper itself (test infrastructure).
STALL_S = 0.05
#: How often the helper checks its own loop.
WATCH_PERIOD_S = 0.01


async def watch_loop(stalls: collections.deque[Tuple[float, float]]) -> None:
    """Record (wall time it ended, seconds) of each stall of this helper: its guests could not answer meanwhile."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(WATCH_PERIOD_S)
        late = loop.time() - before - WATCH_PERIOD_S
        if late >= STALL_S:
            stalls.append((time.time(), late))


async def commands(limit: int = 2 ** 16) -> AsyncIterator[Tuple[str, List[str]]]:
    """Yield (command, arguments) for every non-empty line on stdin until it closes."""
    reader = asyncio.StreamReader(limit=limit)
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode()
        if not line:
            return
        words = line.split()
        if words:
            yield words[0], words[1:]


def status_counts(guests: Mapping[str, Guest]) -> Dict[str, int]:
    """The answer to ``status``: registered, answered and connections summed over the guests."""
    return {'registered': sum(g.registered for g in guests.values()),
            'answered': sum(g.answered for g in guests.values()),
            'connections': sum(g.connections for g in guests.values())}


def hang_or_resume(guests: Mapping[str, Guest], command: str, instances: List[str]) -> Dict[str, Any]:
    """Stop (``hang``) or start (``resume``) answering; the answer has each guest's wall time of it."""
    done = {}
    for instance in instances:
        guests[instance].hung = command == 'hang'
        done[instance] = time.time()
    return {'hung' if command == 'hang' else 'resumed': done}


def reply(data: Dict[str, Any]) -> None:
    """Write one answer line to the driving process."""
    sys.stdout.write(json.dumps(data) + '\n')
    sys.stdout.flush()


def main(argv: Optional[List[str]] = None) -> int:
    """Command line of one helper process (started by ha_guest.testing.bench)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--folder', required=True)
    parser.add_argument('--guests', type=int, required=True)
    parser.add_argument('--interval-ms', type=int, default=100)
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(args.folder, args.guests, args.interval_ms))
    return 0


if __name__ == '__main__':
    sys.exit(main())
