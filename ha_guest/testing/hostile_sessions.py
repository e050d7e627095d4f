"""Hostile guests that abuse their session: valid-frame floods, slowloris, replays, re-init and flapping.

The byte floods of ha_guest.testing.hostile_guests write the same chunk
whatever the session; the kinds here need the connection's session id and
version, so they write real frames of the current session (or, for
slowloris, one byte at a time), each at a pace of its own:

* ``responses``, ``inits``, ``status_requests``: valid frames of the session
  at line rate, a chunk of them (``--chunk-bytes``) ``--rate-hz`` times a
  second, fresh sequence numbers each (a ``response`` with a nonce the host
  never sent; ``status_request`` from an instance without server group
  messaging);
* ``hello_ack``: the guest keeps answering challenges and replays its
  ``hello_ack`` every 50 ms (well under the line budget, so what is tested
  is the registration rule, not the budget);
* ``initflood``: re-``init`` every 25 ms and never answer (under the line
  budget of 50 lines a second, so every ``init`` reaches the monitor: a
  faster flood is only dropped by the budget, the weaker test);
* ``slowloris``: one byte every 10 ms, never a newline, never an answer;
* ``flap``: answers healthy and unhealthy in turn, 100 ms each.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import TYPE_CHECKING, Callable, Dict, List, Tuple

from ha_guest.protocol import HelloAck, heartbeat, sgm, versioning
from ha_guest.protocol.constants import APP_BASE
from ha_guest.protocol.envelope import encode_message
from ha_guest.testing.bench_guests import AGENT_NAME, response_template

if TYPE_CHECKING:
    from ha_guest.testing.bench_guests import GuestConnection
    from ha_guest.testing.hostile_guests import HostileGuest

_SEQ_MARK = 918273645
#: Kinds that answer nothing once started (their answers would end the attack, or are the attack).
MUTE = frozenset({'initflood', 'slowloris'})
#: How long the flapper stays healthy, then unhealthy.
FLAP_PERIOD_S = 0.1

# Per connection and session: frame templates with %d for the seq (cut once, like bench_guests' response).
_templates: 'weakref.WeakKeyDictionary[GuestConnection, Tuple[str, Dict[str, bytes]]]' = weakref.WeakKeyDictionary()


def _template(conn: 'GuestConnection', name: str) -> bytes:
    session = conn.codec.session or ''
    cached = _templates.get(conn)
    if cached is None or cached[0] != session:
        cached = (session, {})
        _templates[conn] = cached
    found = cached[1].get(name)
    if found is None:
        message = {
            'responses': heartbeat.Response('n0t4n0nce%d' % len(session), heartbeat.HEALTHY, ''),
            'inits': heartbeat.Init(conn.guest.interval_ms),
            'initflood': heartbeat.Init(conn.guest.interval_ms),
            'status_requests': sgm.StatusRequest(),
            'hello_ack': HelloAck(conn.codec.version, AGENT_NAME),
        }[name]
        version = versioning.BASE_VERSION if message.APP == APP_BASE else conn.codec.version
        sample = encode_message(message, _SEQ_MARK, session, version)
        found = sample.replace(b'%', b'%%').replace(str(_SEQ_MARK).encode(), b'%d', 1)
        cached[1][name] = found
    return found


def _frames(conn: 'GuestConnection', name: str, size: int) -> bytes:
    """``size`` bytes (about) of valid frames of the current session, with fresh sequence numbers."""
    template = _template(conn, name)
    count = max(1, size // len(template))
    return b''.join([template % conn.codec.next_seq() for _ in range(count)])


def flap_template(conn: 'GuestConnection') -> None:
    """Point the connection's answer template at healthy or unhealthy, by the 100 ms window we are in."""
    if not conn.session:
        return
    unhealthy = int(time.monotonic() / FLAP_PERIOD_S) % 2 == 1
    session = conn.codec.session or ''
    cached = _templates.get(conn)
    if cached is None or cached[0] != session:
        cached = (session, {})
        _templates[conn] = cached
    key = 'flap-unhealthy' if unhealthy else 'flap-healthy'
    found = cached[1].get(key)
    if found is None:
        if unhealthy:
            sample = encode_message(heartbeat.Response('N0NCEPLACEH0LDER', heartbeat.UNHEALTHY, 'flapping'),
                                    _SEQ_MARK, session, conn.codec.version)
            text = sample.replace(b'%', b'%%').replace(str(_SEQ_MARK).encode(), b'%d', 1)
            found = text.replace(b'N0NCEPLACEH0LDER', b'%s', 1)
        else:
            found = response_template(conn.codec)
        cached[1][key] = found
    conn.template = found


#: kind -> (period in s, 0 for the command line's --rate-hz; what to write on one connection).
PACED: Dict[str, Tuple[float, Callable[['GuestConnection', int], bytes]]] = {
    'responses': (0.0, lambda conn, size: _frames(conn, 'responses', size)),
    'inits': (0.0, lambda conn, size: _frames(conn, 'inits', size)),
    'status_requests': (0.0, lambda conn, size: _frames(conn, 'status_requests', size)),
    'hello_ack': (0.05, lambda conn, size: _frames(conn, 'hello_ack', 1)),
    'initflood': (0.025, lambda conn, size: _frames(conn, 'initflood', 1)),
    'slowloris': (0.01, lambda conn, size: b'z'),
}
#: Every kind of this module (``flap`` changes the answers only).
KINDS = frozenset(PACED) | {'flap'}


async def run(guests: Dict[str, 'HostileGuest'], chunk_bytes: int, rate_hz: float, held_limit: int) -> None:
    """Write every paced kind at its pace until cancelled."""
    await asyncio.gather(*[_pace(guests, kind, period or 1.0 / rate_hz, write, chunk_bytes, held_limit)
                           for kind, (period, write) in PACED.items()])


async def _pace(guests: Dict[str, 'HostileGuest'], kind: str, period: float,
                write: Callable[['GuestConnection', int], bytes], chunk_bytes: int, held_limit: int) -> None:
    while True:
        await asyncio.sleep(period)
        targets: List['HostileGuest'] = [g for g in guests.values() if g.flood == kind]
        for guest in targets:
            conn = guest.connection
            if conn is None or conn.transport is None or conn.transport.is_closing() or not conn.session:
                continue
            if conn.transport.get_write_buffer_size() > held_limit:
                guest.held += 1  # the host is not reading
                continue
            chunk = write(conn, chunk_bytes)
            conn.transport.write(chunk)
            guest.written += len(chunk)
