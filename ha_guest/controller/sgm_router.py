"""Server group messaging on the controller: route broadcasts, answer status, pass Nova's news on.

Broadcast batches from compute agents go out as one ComputeAPI.sgm_deliver cast
per destination host (the sender's group's other members, as the directory knows
them now); what can't be routed goes back as one sgm_nack cast per sender host.
A Nova notification updates the directory, goes to the peer controllers
(ControllerSyncAPI.sync_members, fanout) and to the compute agents of the
member's peers (sgm_notify, one cast per host; never to the member itself).
Casts run on the calling thread with a bounded ``retry`` ([sgm] cast_retry), so a
broker outage holds a thread briefly and the cast is dropped and counted. Logs
about drops are rate-limited: guests can cause them at line rate.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Optional, Protocol

from oslo_config import cfg
from oslo_log import log as logging

from ha_guest.compute.log_gate import KeyedLogGates
from ha_guest.conf import sgm as sgm_conf
from ha_guest.controller import nova_notifications as nn
from ha_guest.controller.sgm_directory import GroupView, Member, MemberDirectory, NoGroup, Unavailable
from ha_guest.protocol.limits import MAX_GROUP_MEMBERS
from ha_guest.rpc import sgm_payloads
from ha_guest.rpc.errors import InvalidPayload

LOG = logging.getLogger(__name__)

NO_GROUP = 'no_group'
UNAVAILABLE = 'unavailable'
GROUP_TOO_LARGE = 'group_too_large'
#: Updates per sync_members cast.
SYNC_BATCH = 100


class Compute(Protocol):
    """The casts the router makes to compute agents (ha_guest.rpc.ComputeAPI 1.1)."""

    def sgm_deliver(self, ctxt: Any, host: str, deliveries: list[dict[str, Any]],
                    retry: Optional[int] = None) -> None: ...

    def sgm_notify(self, ctxt: Any, host: str, notifications: list[dict[str, Any]],
                   retry: Optional[int] = None) -> None: ...

    def sgm_nack(self, ctxt: Any, host: str, nacks: list[dict[str, Any]], retry: Optional[int] = None) -> None: ...


class Peers(Protocol):
    """The peer-sync cast the router makes (ha_guest.rpc.ControllerSyncAPI 1.1)."""

    origin: str

    def sync_members(self, updates: list[dict[str, Any]], retry: Optional[int] = None) -> None: ...


class SgmRouter:
    """The controller's half of server group messaging."""

    def __init__(self, conf: cfg.ConfigOpts, directory: MemberDirectory, compute: Compute,
                 peers: Optional[Peers], clock: Callable[[], float] = time.monotonic) -> None:
        sgm_conf.register_opts(conf)
        self.opts = conf[sgm_conf.GROUP]
        self.directory = directory
        self.compute = compute
        self.peers = peers
        self.origin = peers.origin if peers is not None else ''
        self._clock = clock
        self._gate = KeyedLogGates(LOG, clock)
        self._counts_lock = threading.Lock()
        #: Broadcasts by outcome: delivered (to at least one host), alone (no peer on a host), or a drop reason.
        self.broadcasts: collections.Counter[str] = collections.Counter()
        #: Nova events by outcome: notified, no_group, unavailable, and casts that failed.
        self.events: collections.Counter[str] = collections.Counter()

    # -- broadcasts -------------------------------------------------------------------------------------

    def broadcast(self, batch: Any) -> None:
        """Route a compute agent's batch: one sgm_deliver per destination host, one sgm_nack per sender host."""
        items = sgm_payloads.batch(batch, 'broadcasts')
        deliveries: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        nacks: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        # One bound for the whole batch: a batch of uncached senders must not take a Nova timeout each.
        deadline = self._clock() + self.opts.nova_timeout_s
        for raw in items:
            try:
                item = sgm_payloads.broadcast(raw)
            except InvalidPayload as exc:
                self._count(self.broadcasts, 'invalid')
                self._gate.log('invalid', logging.WARNING, 'invalid broadcast dropped: %s', exc)
                continue
            reason, detail, view = self._group(item['sender'], deadline)
            if view is None:
                self._count(self.broadcasts, reason)
                self._gate.log(reason, logging.WARNING, 'broadcast of instance %s refused (%s): %s', item['sender'],
                               reason, detail, instance_uuid=item['sender'])
                nacks[item['host']].append({'instance_uuid': item['sender'], 'session': item['session'],
                                            'ref_seq': item['ref_seq'], 'reason': reason, 'detail': detail})
                continue
            by_host = self._by_host(view.members, exclude=item['sender'])
            self._count(self.broadcasts, 'delivered' if by_host else 'alone')
            for host, recipients in by_host.items():
                deliveries[host].append({'sender': item['sender'], 'recipients': recipients,
                                         'payload': item['payload'], 'stamp': item['stamp'],
                                         'sent_at': item['sent_at']})
        for host, batch_ in deliveries.items():
            self._cast(self.compute.sgm_deliver, host, batch_, 'deliver')
        for host, batch_ in nacks.items():
            self._cast(self.compute.sgm_nack, host, batch_, 'nack')

    # -- status -----------------------------------------------------------------------------------------

    def status(self, instance_uuid: str) -> dict[str, Any]:
        """Return {"members": [...]} (every member, the asking instance included) or {"nack": ..., "detail": ...}."""
        instance_uuid = sgm_payloads.canonical_uuid(instance_uuid, 'instance_uuid')
        reason, detail, view = self._group(instance_uuid, self._clock() + self.opts.nova_timeout_s)
        if view is None:
            return {'nack': reason, 'detail': detail}
        if len(view.members) > MAX_GROUP_MEMBERS:
            return {'nack': GROUP_TOO_LARGE,
                    'detail': 'group %s has %d members, more than %d' % (view.group, len(view.members),
                                                                         MAX_GROUP_MEMBERS)}
        return {'members': [{'uuid': m.uuid, 'state': m.state, 'power_state': m.power_state}
                            for m in view.members]}

    # -- Nova's notifications -----------------------------------------------------------------------------

    def notification(self, update: dict[str, Any]) -> None:
        """Apply a Nova event this controller consumed; tell the peer controllers and the member's peers."""
        if update['kind'] == nn.KIND_MEMBER:
            # The group first: a deleted member leaves it when the update is applied.
            reason, detail, view = self._group(update['member'], self._clock() + self.opts.nova_timeout_s)
            member = self._apply(update)
            if member is None:
                # Overtaken: a newer event of this member was applied (and passed on) already.
                self._count(self.events, 'stale')
                return
            # The guests first (they wait for it), then the peer controllers.
            if view is not None:
                self._notify(update['event'], member, self._by_host(view.members, exclude=member.uuid))
            else:
                self._count(self.events, reason)
                if reason != NO_GROUP:
                    self._gate.log('event-' + reason, logging.WARNING, '%s of instance %s not passed on: %s',
                                   update['event'], update['member'], detail, instance_uuid=update['member'])
            self._sync([update])
        elif update['kind'] == nn.KIND_ADD_MEMBER:
            added = self.directory.add_members(update['group'], update['members'], update.get('at'))
            for item in added:
                self._notify(update['event'], item.member, self._by_host(item.recipients, exclude=item.member.uuid))
            self._sync([update])
        else:
            self._apply(update)
            self._sync([update])
            self._count(self.events, 'group_deleted')

    def sync_members(self, origin: str, updates: Any) -> None:
        """Apply what a peer controller learned from Nova (no casts: that peer notified the guests)."""
        if origin == self.origin:
            return
        for raw in sgm_payloads.batch(updates, 'updates'):
            try:
                self._apply(nn.check_update(raw))
            except InvalidPayload as exc:
                self._gate.log('sync-invalid', logging.WARNING, 'invalid update from peer %s ignored: %s', origin, exc)

    def _apply(self, update: dict[str, Any]) -> Optional[Member]:
        kind = update['kind']
        if kind == nn.KIND_MEMBER:
            return self.directory.update_member(update['member'], update['event'], update['state'],
                                                update['power_state'], update['host'], update['host_given'],
                                                update.get('at'))
        if kind == nn.KIND_ADD_MEMBER:
            self.directory.add_members(update['group'], update['members'], update.get('at'))
        elif kind == nn.KIND_GROUP_DELETE:
            self.directory.delete_group(update['group'], update.get('at'))
        return None

    def _notify(self, event: str, member: Member, by_host: dict[str, list[str]]) -> None:
        self._count(self.events, 'notified' if by_host else 'alone')
        for host, recipients in by_host.items():
            self._cast(self.compute.sgm_notify, host, [{
                'recipients': recipients, 'member': member.uuid, 'event': event, 'state': member.state,
                'power_state': member.power_state}], 'notify')

    def _sync(self, updates: list[dict[str, Any]]) -> None:
        if self.peers is None:
            return
        for start in range(0, len(updates), SYNC_BATCH):
            try:
                self.peers.sync_members(updates[start:start + SYNC_BATCH], retry=self.opts.cast_retry)
            except Exception as exc:
                self._count(self.events, 'sync_failed')
                self._gate.log('sync', logging.WARNING, 'could not tell the peer controllers about %s: %s',
                               updates[start]['event'], exc)

    # -- helpers ------------------------------------------------------------------------------------------

    def _group(self, instance_uuid: str, deadline: float) -> tuple[str, str, Optional[GroupView]]:
        """Return ('', '', view) or (nack reason, detail, None)."""
        if not self.opts.enabled:
            return UNAVAILABLE, 'server group messaging is disabled on the controllers ([sgm] enabled)', None
        try:
            return '', '', self.directory.group_of(instance_uuid, max(0.0, deadline - self._clock()))
        except NoGroup as exc:
            return NO_GROUP, str(exc), None
        except Unavailable as exc:
            return UNAVAILABLE, str(exc), None

    @staticmethod
    def _by_host(members: Iterable[Member], exclude: str) -> dict[str, list[str]]:
        by_host: dict[str, list[str]] = collections.defaultdict(list)
        for member in members:
            # A member on no host (shelved offloaded, deleted) has no channel to write to.
            if member.uuid != exclude and member.host:
                by_host[member.host].append(member.uuid)
        return dict(by_host)

    def _cast(self, method: Callable[..., None], host: str, items: list[dict[str, Any]], what: str) -> None:
        try:
            method({}, host, items, retry=self.opts.cast_retry)
        except Exception as exc:
            self._count(self.events if what == 'notify' else self.broadcasts, '%s_cast_failed' % what, len(items))
            self._gate.log('cast-' + what, logging.WARNING, 'sgm_%s of %d item(s) to host %s dropped: %s', what,
                           len(items), host, exc)

    def _count(self, counter: collections.Counter[str], key: str, n: int = 1) -> None:
        with self._counts_lock:
            counter[key] += n

    def stats(self) -> dict[str, Any]:
        """Return the counters (broadcasts and Nova events by outcome) and the directory's sizes."""
        with self._counts_lock:
            return {'broadcasts': dict(self.broadcasts), 'events': dict(self.events),
                    'directory': self.directory.stats()}
