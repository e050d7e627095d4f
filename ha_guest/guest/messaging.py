"""Server group messaging between the local API and the channel.

Broadcasts are fire and forget: the reply carries the frame's seq, and a
later sgm/nack for it is only logged (throttled) and counted. A status
request waits for sgm/status_reply (or sgm/nack) with its seq as ref_seq; a
lost session fails it with host_unavailable at once. Broadcasts and status
requests together are held to the host's broadcast rate, so an eager
application is refused locally (busy) instead of getting the guest's
frames, heartbeat answers included, rate limited by the host.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Callable, Deque, Dict, List, Optional

from ha_guest.guest import localapi
from ha_guest.guest.localapi import RequestError
from ha_guest.guest.logthrottle import BurstLog
from ha_guest.protocol import sgm
from ha_guest.protocol.limits import BROADCAST_BURST, BROADCAST_RATE
from ha_guest.protocol.messages import Message
from ha_guest.protocol.ratelimit import TokenBucket

LOG = logging.getLogger(__name__)

MAX_PENDING_REQUESTS = 64
RECENT_BROADCASTS = 64

Members = List[Dict[str, Any]]


class GroupMessaging:
    """SGM requests from local clients and SGM frames from the host."""

    def __init__(self, send: Callable[[Message], Optional[int]], has_session: Callable[[], bool],
                 publish: Callable[[Dict[str, Any]], None]) -> None:
        self._send = send
        self._has_session = has_session
        self._publish = publish
        self.counters: Dict[str, int] = collections.OrderedDict(
            (name, 0) for name in ("broadcasts", "broadcast_nacks", "status_requests", "deliveries"))
        self._pending: Dict[int, "asyncio.Future[Members]"] = {}
        self._broadcast_seqs: Deque[int] = collections.deque(maxlen=RECENT_BROADCASTS)
        self._bucket = TokenBucket(BROADCAST_RATE, BROADCAST_BURST)
        self.nack_log = BurstLog(LOG, "broadcast nacks")

    def on_message(self, message: Message) -> None:
        """Handle one SGM frame from the host."""
        if isinstance(message, sgm.BroadcastDeliver):
            self.counters["deliveries"] += 1
            data = message.to_data()
            self._publish({"event": localapi.EV_BROADCAST, "sender": data["sender"], "payload": data["payload"]})
        elif isinstance(message, sgm.Notification):
            self.counters["deliveries"] += 1
            self._publish({"event": localapi.EV_NOTIFICATION, "member": message.member,
                           "event_type": message.event, "state": message.state,
                           "power_state": message.power_state})
        elif isinstance(message, sgm.StatusReply):
            future = self._pending.get(message.ref_seq)
            if future is not None and not future.done():
                future.set_result([member.to_data() for member in message.members])
            else:
                LOG.debug("status reply for unknown seq %d", message.ref_seq)
        elif isinstance(message, sgm.Nack):
            self._on_nack(message)

    def _on_nack(self, nack: sgm.Nack) -> None:
        text = nack.reason + (": " + nack.detail if nack.detail else "")
        future = self._pending.get(nack.ref_seq)
        if future is not None:
            if not future.done():
                future.set_exception(RequestError(localapi.E_NACK, text))
        elif nack.ref_seq in self._broadcast_seqs:
            self.counters["broadcast_nacks"] += 1
            self.nack_log.hit("host refused broadcast seq %d: %s", nack.ref_seq, text)
        else:
            LOG.debug("nack for unknown seq %d: %s", nack.ref_seq, text)

    def end_session(self, why: str) -> None:
        """Fail every waiting request: its reply can no longer come."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RequestError(localapi.E_HOST_UNAVAILABLE, why))
        self._pending.clear()
        self._broadcast_seqs.clear()

    def _send_request(self, message: Message) -> int:
        if not self._has_session():
            raise RequestError(localapi.E_HOST_UNAVAILABLE, "no session with the host")
        if not self._bucket.allow():
            raise RequestError(localapi.E_BUSY, "more than %g SGM requests per second" % BROADCAST_RATE)
        seq = self._send(message)
        if seq is None:
            raise RequestError(localapi.E_HOST_UNAVAILABLE, "channel to the host lost")
        return seq

    def broadcast(self, payload: bytes) -> int:
        """Send a broadcast; return its seq."""
        seq = self._send_request(sgm.Broadcast(payload))
        self._broadcast_seqs.append(seq)
        self.counters["broadcasts"] += 1
        return seq

    async def group_status(self, timeout_s: float) -> Members:
        """Ask the host for the group's state and wait for the reply."""
        if len(self._pending) >= MAX_PENDING_REQUESTS:
            raise RequestError(localapi.E_BUSY, "too many status requests waiting")
        seq = self._send_request(sgm.StatusRequest())
        self.counters["status_requests"] += 1
        future: "asyncio.Future[Members]" = asyncio.get_running_loop().create_future()
        self._pending[seq] = future
        try:
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(localapi.E_TIMEOUT, "no status reply within %gs" % timeout_s) from None
        finally:
            if self._pending.get(seq) is future:
                del self._pending[seq]
