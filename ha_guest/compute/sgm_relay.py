"""Server group messaging on the compute host: guests' requests out, peers' broadcasts in.

Everything here runs on the compute agent's event loop, like the channels.
A guest's ``broadcast`` is checked (SGM enabled for its instance, the
per-instance BROADCAST_RATE bucket), stamped with the sender taken from the
channel it arrived on (never from the guest's bytes) and a per-sender
increasing ``stamp``, and queued for the controllers (sgm_sender.py). A
``status_request`` becomes a bounded RPC call whose answer is written back
as ``status_reply`` or ``nack`` with the request's seq, if the guest's
session is still the one that asked.

Deliveries, notifications and nacks from the controllers arrive in RPC
threads and are handed to the loop. A delivery reaches a local recipient
only if the recipient's instance has SGM enabled, is not the sender and has
a live session, and only if no later broadcast of the same sender reached
it first (an overtaken broadcast is dropped, never delivered late). Every
drop is counted by reason; log lines are rate-limited per reason.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from ha_guest.compute import fastpath
from ha_guest.compute.log_gate import KeyedLogGates
from ha_guest.compute.sgm_sender import SgmSender
from ha_guest.protocol import errors, limits, sgm
from ha_guest.protocol.envelope import Envelope
from ha_guest.protocol.messages import Message
from ha_guest.protocol.ratelimit import TokenBucket

LOG = logging.getLogger(__name__)

#: Status requests of one instance waiting for a controller at once.
MAX_PENDING_STATUS = 2
#: (recipient, sender) pairs whose last delivered stamp is remembered.
MAX_TRACKED_PAIRS = 100000

# Why a broadcast (or a delivery of it) was dropped; the keys of ``drops``.
DROP_NOT_ENABLED = "not_enabled"  # the sender's instance has no SGM
DROP_RATE_LIMITED = "rate_limited"
DROP_UNAVAILABLE = "unavailable"  # queue full, broker or controller unreachable
DROP_NO_GROUP = "no_group"  # the controller found no group
DROP_REFUSED = "refused"  # the controller refused it for another reason
DROP_NOT_HERE = "not_here"  # a recipient not on this host (any more)
DROP_RECIPIENT_NOT_ENABLED = "recipient_not_enabled"
DROP_NOT_CONNECTED = "not_connected"  # the recipient's guest has no session
DROP_BACKLOG = "backlog"  # the recipient's guest does not read fast enough
DROP_REORDERED = "reordered"
DROP_SELF = "self"
DROP_INVALID = "invalid"
DROP_REASONS = (DROP_NOT_ENABLED, DROP_RATE_LIMITED, DROP_UNAVAILABLE, DROP_NO_GROUP, DROP_REFUSED,
                DROP_NOT_HERE, DROP_RECIPIENT_NOT_ENABLED, DROP_NOT_CONNECTED, DROP_BACKLOG, DROP_REORDERED,
                DROP_SELF, DROP_INVALID)


class RelayChannel(Protocol):
    """What the relay needs of a GuestChannel."""

    instance_uuid: str
    hello_acked: bool

    @property
    def session(self) -> Optional[str]:
        """The current session id, None while disconnected."""

    @property
    def sgm_enabled(self) -> bool:
        """Whether the instance's flavor enabled server group messaging."""

    def send(self, message: Message) -> None:
        """Write one message of the current session, if connected."""

    def send_deliver(self, data: bytes) -> bool:
        """Write a broadcast_deliver with pre-encoded data; False if it could not be written now."""


class SgmRelay:
    """The host end of server group messaging for every channel of this compute agent."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, sender: SgmSender,
                 channel_of: Callable[[str], Optional[RelayChannel]],
                 broadcast_rate: float = limits.BROADCAST_RATE, broadcast_burst: int = limits.BROADCAST_BURST,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.loop = loop
        self.host = host
        self.sender = sender
        self.channel_of = channel_of
        self.broadcast_rate = broadcast_rate
        self.broadcast_burst = broadcast_burst
        self._clock_ns = clock_ns
        self.counters: Dict[str, int] = {
            "broadcasts_received": 0, "broadcasts_forwarded": 0, "deliveries": 0, "notifications": 0,
            "status_requests": 0, "status_replies": 0, "nacks_sent": 0}
        self.drops: Dict[str, int] = {reason: 0 for reason in DROP_REASONS}
        self._buckets: Dict[str, TokenBucket] = {}
        self._last_sent: Dict[str, int] = {}
        self._last_delivered: "collections.OrderedDict[Tuple[str, str], int]" = collections.OrderedDict()
        self._pending_status: Dict[str, int] = {}
        self._logs = KeyedLogGates(LOG, loop.time)  # one line per 10 s per reason

    # -- guest requests (loop) ---------------------------------------------------------------------

    def on_request(self, channel: RelayChannel, env: Envelope, message: Message) -> None:
        """Serve a guest's ``broadcast`` or ``status_request``."""
        uuid = channel.instance_uuid
        is_broadcast = isinstance(message, sgm.Broadcast)
        if is_broadcast:
            self.counters["broadcasts_received"] += 1
        else:
            self.counters["status_requests"] += 1
        if not channel.sgm_enabled:
            self._nack(channel, env.seq, sgm.NACK_NOT_ENABLED,
                       "server group messaging is not enabled for this instance", is_broadcast)
            return
        bucket = self._buckets.get(uuid)
        if bucket is None:
            bucket = self._buckets[uuid] = TokenBucket(self.broadcast_rate, self.broadcast_burst, self.loop.time)
        if not bucket.allow():
            self._nack(channel, env.seq, sgm.NACK_RATE_LIMITED, "", is_broadcast)
            return
        if isinstance(message, sgm.Broadcast):
            self._forward(channel, env, message)
        else:
            self._ask_status(channel, env)

    def _forward(self, channel: RelayChannel, env: Envelope, message: sgm.Broadcast) -> None:
        uuid = channel.instance_uuid
        stamp = max(self._last_sent.get(uuid, 0) + 1, self._clock_ns())
        item = {"sender": uuid, "host": self.host, "session": channel.session or "", "ref_seq": env.seq,
                "payload": base64.b64encode(message.payload).decode("ascii"), "stamp": stamp,
                "sent_at": time.time()}
        if not self.sender.broadcast(item):
            self._nack(channel, env.seq, sgm.NACK_UNAVAILABLE, "too many broadcasts waiting for the controller",
                       True)
            return
        self._last_sent[uuid] = stamp
        self.counters["broadcasts_forwarded"] += 1

    def _ask_status(self, channel: RelayChannel, env: Envelope) -> None:
        uuid, session, ref_seq = channel.instance_uuid, channel.session, env.seq
        if self._pending_status.get(uuid, 0) >= MAX_PENDING_STATUS:
            self._nack(channel, ref_seq, sgm.NACK_RATE_LIMITED, "a status request is already pending", False)
            return

        def answered(answer: Dict[str, Any]) -> None:  # a sender thread
            self.loop.call_soon_threadsafe(self._status_answered, uuid, session, ref_seq, answer)

        if not self.sender.status(uuid, answered):
            self._nack(channel, ref_seq, sgm.NACK_UNAVAILABLE, "too many status requests waiting", False)
            return
        self._pending_status[uuid] = self._pending_status.get(uuid, 0) + 1

    def _status_answered(self, uuid: str, session: Optional[str], ref_seq: int, answer: Dict[str, Any]) -> None:
        left = self._pending_status.get(uuid, 1) - 1
        if left > 0:
            self._pending_status[uuid] = left
        else:
            self._pending_status.pop(uuid, None)
        channel = self.channel_of(uuid)
        if channel is None or channel.session != session or session is None:
            return  # the guest that asked is gone; a new session did not ask
        if "nack" in answer:
            self._nack(channel, ref_seq, str(answer["nack"]), str(answer.get("detail") or ""), False)
            return
        members = answer.get("members") or []
        if len(members) > limits.MAX_GROUP_MEMBERS:
            self._nack(channel, ref_seq, sgm.NACK_GROUP_TOO_LARGE, "the group has %d members, more than %d"
                       % (len(members), limits.MAX_GROUP_MEMBERS), False)
            return
        try:
            entries = tuple(sgm.member_status(m["uuid"], m["state"], m.get("power_state") or "", m["uuid"] == uuid)
                            for m in members)
        except (errors.ProtocolError, KeyError, TypeError) as exc:
            self._logs.log("status", logging.WARNING, "unusable status answer for %s: %s", uuid, exc,
                           instance_uuid=uuid)
            self._nack(channel, ref_seq, sgm.NACK_UNAVAILABLE, "the group's state could not be read", False)
            return
        if sum(entry.is_self for entry in entries) != 1:
            self._nack(channel, ref_seq, sgm.NACK_UNAVAILABLE, "the group's state does not list this instance yet",
                       False)
            return
        channel.send(sgm.StatusReply(ref_seq, entries))
        self.counters["status_replies"] += 1

    def _nack(self, channel: RelayChannel, ref_seq: int, reason: str, detail: str, is_broadcast: bool) -> None:
        if is_broadcast:
            self._drop(reason if reason in self.drops else DROP_REFUSED, channel.instance_uuid)
        channel.send(sgm.Nack(ref_seq, reason, detail[:limits.MAX_REASON_CHARS]))
        self.counters["nacks_sent"] += 1

    def _drop(self, reason: str, instance_uuid: str, count: int = 1) -> None:
        self.drops[reason] += count
        level = logging.INFO if reason in (DROP_NOT_CONNECTED, DROP_NOT_HERE) else logging.WARNING
        self._logs.log(reason, level, "server group messaging: broadcast dropped (%s), instance %s", reason,
                       instance_uuid, instance_uuid=instance_uuid)

    def forget(self, instance_uuid: str) -> None:
        """Drop what is kept for an instance whose channel went away."""
        self._buckets.pop(instance_uuid, None)
        self._last_sent.pop(instance_uuid, None)

    # -- from the controllers (loop) ---------------------------------------------------------------

    def sender_failed(self, broadcasts: List[Dict[str, Any]], reason: str) -> None:
        """Broadcasts the sender could not hand to a controller: nack them."""
        self.nack([{"instance_uuid": b["sender"], "session": b["session"], "ref_seq": b["ref_seq"],
                    "reason": reason, "detail": "no controller could be reached"} for b in broadcasts])

    def nack(self, nacks: List[Dict[str, Any]]) -> None:
        """Controllers refused broadcasts of local guests."""
        for item in nacks:
            channel = self.channel_of(item["instance_uuid"])
            reason = str(item["reason"])
            self._drop(reason if reason in self.drops else DROP_REFUSED, item["instance_uuid"])
            if channel is not None and channel.session == item["session"]:
                channel.send(sgm.Nack(item["ref_seq"], reason, str(item.get("detail") or "")))
                self.counters["nacks_sent"] += 1

    def deliver(self, deliveries: List[Dict[str, Any]]) -> None:
        """Write peers' broadcasts to their local recipients."""
        for item in deliveries:
            sender, stamp, text = item["sender"], item["stamp"], item["payload"]
            try:
                size = len(base64.b64decode(text, validate=True))
            except (binascii.Error, ValueError):
                size = -1
            if not 0 <= size <= limits.MAX_BROADCAST_BYTES:
                self._drop(DROP_INVALID, sender)
                continue
            data = fastpath.broadcast_deliver_data(sender, text)  # once for every recipient
            for recipient in item["recipients"]:
                channel = self._recipient(recipient, sender, stamp)
                if channel is not None:
                    if channel.send_deliver(data):
                        self.counters["deliveries"] += 1
                    else:
                        self._drop(DROP_BACKLOG, recipient)

    def _recipient(self, recipient: str, sender: str, stamp: int) -> Optional[RelayChannel]:
        """Return the channel a broadcast of ``sender`` stamped ``stamp`` may go to; None (counted) if none."""
        if recipient == sender:
            self._drop(DROP_SELF, sender)
            return None
        channel = self.channel_of(recipient)
        if channel is None:
            self._drop(DROP_NOT_HERE, recipient)
            return None
        if not channel.sgm_enabled:
            self._drop(DROP_RECIPIENT_NOT_ENABLED, recipient)
            return None
        if not channel.hello_acked or channel.session is None:
            self._drop(DROP_NOT_CONNECTED, recipient)
            return None
        key = (recipient, sender)
        last = self._last_delivered.get(key)
        if last is not None and stamp <= last:
            self._drop(DROP_REORDERED, recipient)
            return None
        self._last_delivered[key] = stamp
        self._last_delivered.move_to_end(key)
        if len(self._last_delivered) > MAX_TRACKED_PAIRS:
            self._last_delivered.popitem(last=False)
        return channel

    def notify(self, notifications: List[Dict[str, Any]]) -> None:
        """Write peers' state changes to their local recipients."""
        for item in notifications:
            try:
                message = sgm.Notification.from_data(
                    {"member": item["member"], "event": item["event"], "state": item["state"],
                     "power_state": item["power_state"]})
            except errors.ProtocolError as exc:
                self._logs.log("notification", logging.WARNING, "unusable notification %s: %s", item, exc)
                continue
            for recipient in item["recipients"]:
                channel = self.channel_of(recipient)
                if recipient != item["member"] and channel is not None and channel.sgm_enabled \
                        and channel.hello_acked and channel.session is not None:
                    channel.send(message)
                    self.counters["notifications"] += 1

    def stats(self) -> Dict[str, Any]:
        """Counters, drops by reason and the sender's counters (on the loop)."""
        return dict(self.counters, drops=dict(self.drops), sender=dict(self.sender.counters),
                    sender_pending=self.sender.pending())
