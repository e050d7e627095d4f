"""Many SGM guests in one process, for the server group messaging benchmark: QEMU's socket and a guest in one.

Each guest binds ``<uuid>.sock`` in its compute host's discovery folder, the
way QEMU binds a channel's socket, and speaks real ha_guest.protocol frames
on the connection the compute agent makes: hello -> hello_ack (no ``init``:
the benchmark's instances are SGM-only, heartbeat off), ``broadcast`` frames
encoded by a ChannelCodec(GUEST), ``status_request``, and it reads
``broadcast_deliver``, ``notification``, ``status_reply`` and ``nack``.
Every frame goes through the codec except ``broadcast_deliver``, which takes
a shortcut so that fifteen thousand 4 KB deliveries a second cost the
machine little next to the agents: a regular expression checks the frame's
head and only the payload's stamp (its first STAMP_BYTES bytes, base64) is
decoded. Each payload carries its sender, a sequence number and its send
time (stamp_payload), so any process can time a delivery.

Driven over stdin/stdout, one JSON object per line:

* printed at start: ``{"ready": n}``
* ``status`` -> connections, hello-acked guests, nacks by reason, errors, deliveries, notifications
* ``send UUID`` -> ``{"seq": n, "t": ns}``: one broadcast now
* ``wait_bcast SENDER SEQ N TIMEOUT_S`` -> ``{"count": n, "last": ns}``: until N local peers got it
* ``wait_note MEMBER EVENT SINCE_NS N TIMEOUT_S`` -> ``{"count": n, "last": ns}``: notifications since
* ``ask UUID TIMEOUT_S`` -> the status_reply (members) or nack of one status_request
* ``load RATE START_NS SECONDS`` -> every guest broadcasts RATE/s from START_NS (wall) for SECONDS
* ``report`` -> every broadcast this process sent and, per broadcast received, count and last arrival
* end of stdin: exit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import re
import resource
import sys
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from ha_guest.protocol import GUEST, ChannelCodec, Envelope, Error, Hello, HelloAck, ProtocolError, negotiate, sgm
from ha_guest.protocol.envelope import encode_message
from ha_guest.protocol.limits import MAX_BROADCAST_BYTES
from ha_guest.testing.bench_guests import commands, reply

AGENT_NAME = 'ha-guest-bench-sgm'
#: Bytes of a payload's stamp; a multiple of 3, so its base64 is a prefix of the payload's.
STAMP_BYTES = 75
_STAMP_B64 = STAMP_BYTES // 3 * 4
_DELIVER = re.compile(
    rb'\{"v":\d+,"app":"sgm","type":"broadcast_deliver","seq":\d+,"session":"([0-9a-f]+)",'
    rb'"data":\{"sender":"([0-9a-f-]{36})","payload":"([A-Za-z0-9+/]{%d})' % _STAMP_B64).match


def stamp_payload(sender: str, seq: int, t_ns: int, size: int = MAX_BROADCAST_BYTES) -> bytes:
    """Return a ``size``-byte payload whose first STAMP_BYTES bytes say sender, seq and send time (wall ns)."""
    head = b'HAGB %s %010d %019d' % (sender.encode('ascii'), seq, t_ns)
    if len(head) > STAMP_BYTES or size < STAMP_BYTES:
        raise ValueError('a stamp takes %d bytes' % STAMP_BYTES)
    return head.ljust(STAMP_BYTES, b' ') + b'.' * (size - STAMP_BYTES)


def read_stamp(head: bytes) -> Tuple[str, int, int]:
    """Return (sender, seq, t_ns) from a payload's first STAMP_BYTES bytes; ValueError if it is not a stamp."""
    parts = head[:STAMP_BYTES].split()
    if len(parts) != 4 or parts[0] != b'HAGB':
        raise ValueError('not a benchmark stamp: %r' % head[:STAMP_BYTES])
    return parts[1].decode('ascii'), int(parts[2]), int(parts[3])


class Guests:
    """Every guest of this process and what they sent and received."""

    def __init__(self) -> None:
        self.connections: Dict[str, 'GuestConnection'] = {}  # uuid -> current connection
        self.seq: Dict[str, int] = {}
        self.sent: Dict[str, List[Tuple[int, int]]] = {}  # sender -> [(seq, t_ns)]
        self.receipts: Dict[Tuple[str, int], List[int]] = {}  # (sender, seq) -> [count, last t_ns]
        self.notes: Dict[Tuple[str, str], List[int]] = {}  # (member, event) -> arrival times
        self.nacks: Dict[str, int] = {}
        self.counters = {'connections': 0, 'deliveries': 0, 'notifications': 0, 'errors': 0, 'self_deliveries': 0,
                         'misattributed': 0}
        self.waiters: List[Tuple[Any, asyncio.Future[None]]] = []
        self.tasks: Set['asyncio.Future[None]'] = set()  # load tasks running

    def wake(self) -> None:
        """Resolve the waiters whose condition holds now."""
        still = []
        for check, future in self.waiters:
            if future.done():
                continue
            if check():
                future.set_result(None)
            else:
                still.append((check, future))
        self.waiters = still

    def send_broadcast(self, instance: str) -> Optional[Tuple[int, int]]:
        """Send one stamped broadcast from ``instance``; return (seq, t_ns), None when not connected."""
        connection = self.connections.get(instance)
        if connection is None or not connection.acked or connection.transport is None:
            return None
        seq = self.seq[instance] = self.seq.get(instance, 0) + 1
        t_ns = time.time_ns()
        connection.transport.write(connection.codec.encode(sgm.Broadcast(stamp_payload(instance, seq, t_ns))))
        self.sent.setdefault(instance, []).append((seq, t_ns))
        return seq, t_ns


class GuestConnection(asyncio.Protocol):
    """One connection of the compute agent to a guest's socket: a fresh codec each time."""

    def __init__(self, guests: Guests, instance_uuid: str) -> None:
        self.guests = guests
        self.instance_uuid = instance_uuid
        self.codec = ChannelCodec(GUEST)
        self.transport: Optional[asyncio.Transport] = None
        self.pending = b''
        self.acked = False
        self.status: Dict[int, asyncio.Future[Dict[str, Any]]] = {}  # status_request seq -> answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.guests.counters['connections'] += 1
        self.guests.connections[self.instance_uuid] = self

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.guests.connections.get(self.instance_uuid) is self:
            del self.guests.connections[self.instance_uuid]
        self.transport = None

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        guests = self.guests
        *lines, self.pending = (self.pending + data).split(b'\n')
        out: List[bytes] = []
        woke = False
        for line in lines:
            match = _DELIVER(line)
            if match is not None and line.endswith(b'"}}') and match.group(1).decode() == self.codec.session:
                sender, seq, _ = read_stamp(base64.b64decode(match.group(3)))
                stamped = match.group(2).decode()
                if stamped == self.instance_uuid:
                    guests.counters['self_deliveries'] += 1
                if stamped != sender:
                    guests.counters['misattributed'] += 1  # the host stamps the sender: it must be the real one
                receipt = guests.receipts.setdefault((sender, seq), [0, 0])
                receipt[0] += 1
                receipt[1] = max(receipt[1], now)
                guests.counters['deliveries'] += 1
                woke = True
                continue
            for item in self.codec.feed(line + b'\n'):
                if isinstance(item, Envelope):
                    woke = self._handle(item, now, out) or woke
                else:
                    guests.counters['errors'] += 1
        if out and self.transport is not None:
            self.transport.write(b''.join(out))
        if woke and guests.waiters:
            guests.wake()

    def _handle(self, env: Envelope, now: int, out: List[bytes]) -> bool:
        message = env.message
        guests = self.guests
        if isinstance(message, Hello):
            try:
                version = negotiate(message.version_min, message.version_max)
            except ProtocolError:
                return False
            self.codec.version = version
            out.append(self.codec.encode(HelloAck(version, AGENT_NAME)))  # SGM-only: no heartbeat init
            self.acked = True
        elif isinstance(message, sgm.Notification):
            guests.notes.setdefault((message.member, message.event), []).append(now)
            guests.counters['notifications'] += 1
            return True
        elif isinstance(message, sgm.BroadcastDeliver):  # a frame the shortcut did not take
            sender, seq, _ = read_stamp(message.payload)
            receipt = guests.receipts.setdefault((sender, seq), [0, 0])
            receipt[0] += 1
            receipt[1] = max(receipt[1], now)
            guests.counters['deliveries'] += 1
            return True
        elif isinstance(message, sgm.StatusReply):
            self._answer(message.ref_seq, {'members': [m.to_data() for m in message.members]})
        elif isinstance(message, sgm.Nack):
            guests.nacks[message.reason] = guests.nacks.get(message.reason, 0) + 1
            self._answer(message.ref_seq, {'nack': message.reason, 'detail': message.detail})
        elif isinstance(message, Error):
            guests.counters['errors'] += 1
        return False

    def _answer(self, ref_seq: int, answer: Dict[str, Any]) -> None:
        future = self.status.pop(ref_seq, None)
        if future is not None and not future.done():
            future.set_result(answer)

    def ask_status(self) -> 'asyncio.Future[Dict[str, Any]]':
        """Send a status_request; the future gets the reply's members or the nack."""
        assert self.transport is not None
        seq = self.codec.next_seq()
        future: asyncio.Future[Dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.status[seq] = future
        self.transport.write(encode_message(sgm.StatusRequest(), seq, self.codec.session, self.codec.version))
        return future


async def _wait(guests: Guests, check: Any, timeout: float) -> None:
    if check():
        return
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    guests.waiters.append((check, future))
    try:
        await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        pass


async def _load(guests: Guests, instances: List[str], rate: float, start_ns: int, seconds: float) -> None:
    """Every guest sends ``rate`` broadcasts a second, at a random phase, from start_ns for ``seconds``."""
    loop = asyncio.get_running_loop()
    period = 1.0 / rate
    start = loop.time() + (start_ns - time.time_ns()) / 1e9
    end = start + seconds

    async def one(instance: str) -> None:
        at = start + random.uniform(0.0, period)
        while at < end:
            await asyncio.sleep(max(0.0, at - loop.time()))
            guests.send_broadcast(instance)
            at += period

    await asyncio.gather(*(one(instance) for instance in instances))


async def _command(guests: Guests, instances: List[str], command: str, args: List[str]) -> Dict[str, Any]:
    """Carry out one command line; return the answer."""
    if command == 'status':
        return dict(guests.counters, acked=sum(c.acked for c in guests.connections.values()), nacks=guests.nacks)
    if command == 'send':
        sent = guests.send_broadcast(args[0])
        return {'seq': sent[0], 't': sent[1]} if sent else {'error': 'not connected'}
    if command == 'wait_bcast':
        key, expected = (args[0], int(args[1])), int(args[2])
        await _wait(guests, lambda: guests.receipts.get(key, [0])[0] >= expected, float(args[3]))
        count, last = guests.receipts.get(key, [0, 0])
        return {'count': count, 'last': last}
    if command == 'wait_note':
        note, since, wanted = (args[0], args[1]), int(args[2]), int(args[3])

        def arrived() -> List[int]:
            return [t for t in guests.notes.get(note, ()) if t >= since]

        await _wait(guests, lambda: len(arrived()) >= wanted, float(args[4]))
        return {'count': len(arrived()), 'last': max(arrived(), default=0)}
    if command == 'ask':
        connection = guests.connections.get(args[0])
        if connection is None or not connection.acked:
            return {'error': 'not connected'}
        try:
            return await asyncio.wait_for(connection.ask_status(), float(args[1]))
        except asyncio.TimeoutError:
            return {'error': 'no answer'}
    if command == 'load':
        task = asyncio.ensure_future(_load(guests, instances, float(args[0]), int(args[1]), float(args[2])))
        guests.tasks.add(task)
        task.add_done_callback(guests.tasks.discard)
        return {'started': len(instances)}
    if command == 'report':
        return {'sent': guests.sent, 'receipts': [[s, q, c, t] for (s, q), (c, t) in guests.receipts.items()]}
    return {'error': 'unknown command %r' % command}


async def serve(spec: List[Dict[str, str]]) -> None:
    """Bind every guest of ``spec`` ([{"uuid", "folder"}]), then follow the commands on stdin."""
    loop = asyncio.get_running_loop()
    guests = Guests()
    for entry in spec:
        instance, path = entry['uuid'], '%s/%s.sock' % (entry['folder'], entry['uuid'])
        # QEMU listens with a backlog of one: one host connection at a time.
        await loop.create_unix_server(lambda i=instance: GuestConnection(guests, i), path, backlog=1)  # type: ignore[misc]
    reply({'ready': len(spec)})
    instances = [entry['uuid'] for entry in spec]
    async for command, args in commands(limit=2 ** 20):
        reply(await _command(guests, instances, command, args))


def main(argv: Optional[List[str]] = None) -> int:
    """Command line of one helper process (started by ha_guest.testing.bench_sgm)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--spec', required=True, help='JSON file: [{"uuid": ..., "folder": ...}, ...]')
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(args.spec, encoding='utf-8') as handle:
        spec = json.load(handle)
    asyncio.run(serve(spec))
    return 0


if __name__ == '__main__':
    sys.exit(main())
