"""What the controller knows of Nova's server groups: instance -> group, group -> members, member -> state.

Learned from Nova's API (openstacksdk, [nova_api] credentials) and kept current by
Nova's versioned notifications (apply()). Thread-safe: the controller's RPC and
notification threads share one directory. A lookup never waits longer than
[sgm] nova_timeout_s: Nova requests run in a small pool of their own, concurrent
lookups of one instance or group share one request, and a request that is late
still fills the cache for the next caller. Nothing here casts or logs per message.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, Optional, TypeVar

from oslo_config import cfg
from oslo_log import log as logging

from ha_guest.conf import sgm as sgm_conf

LOG = logging.getLogger(__name__)

#: Nova's REST power_state integers (OS-EXT-STS:power_state) -> Nova's names.
POWER_STATES = {0: 'pending', 1: 'running', 3: 'paused', 4: 'shutdown', 6: 'crashed', 7: 'suspended'}
#: Compute API microversion from which a server shows its server_groups.
SERVER_GROUPS_MICROVERSION = '2.71'
DELETED = 'deleted'

K = TypeVar('K')
V = TypeVar('V')


class NoGroup(Exception):
    """The instance is in no server group (or Nova does not know it)."""


class Unavailable(Exception):
    """Nova could not be asked within [sgm] nova_timeout_s."""


@dataclasses.dataclass(frozen=True)
class Member:
    """One instance as the directory knows it; host None: on no compute host (shelved, deleted)."""

    uuid: str
    host: Optional[str]
    state: str
    power_state: str


@dataclasses.dataclass(frozen=True)
class GroupView:
    """A group and every member whose state is known, the asking instance included."""

    group: str
    members: tuple[Member, ...]


@dataclasses.dataclass(frozen=True)
class AddedMember:
    """A member that server_group.add_member brought, and the members that knew the group before."""

    member: Member
    recipients: tuple[Member, ...]


def power_state_name(value: Any) -> str:
    """Return Nova's power state name for an integer or a name; '' if unknown."""
    if isinstance(value, bool):
        return ''
    if isinstance(value, int):
        return POWER_STATES.get(value, '')
    return value if isinstance(value, str) and value in POWER_STATES.values() else ''


class _LRU(Generic[K, V]):
    """A size-bounded map of (value, learned_at); the least recently used goes first. Callers hold the lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: collections.OrderedDict[K, tuple[V, float]] = collections.OrderedDict()

    def get(self, key: K) -> Optional[tuple[V, float]]:
        item = self._data.get(key)
        if item is not None:
            self._data.move_to_end(key)
        return item

    def put(self, key: K, value: V, at: float) -> None:
        self._data[key] = (value, at)
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)

    def items(self) -> list[tuple[K, tuple[V, float]]]:
        return list(self._data.items())

    def __len__(self) -> int:
        return len(self._data)


class MemberDirectory:
    """The cache of groups, members and their states, and the bounded Nova lookups that fill it."""

    def __init__(self, conf: cfg.ConfigOpts, connection_factory: Optional[Callable[[], Any]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        sgm_conf.register_opts(conf)
        self.opts = conf[sgm_conf.GROUP]
        self._conf = conf
        self._connection_factory = connection_factory or self._connect
        self._connection: Any = None
        self._clock = clock
        self._lock = threading.Lock()
        self._membership: _LRU[str, Optional[str]] = _LRU(self.opts.cache_size)  # instance -> group (None: none)
        self._groups: _LRU[str, tuple[str, ...]] = _LRU(self.opts.cache_size)  # group -> member uuids
        self._states: _LRU[str, Member] = _LRU(self.opts.cache_size)  # instance -> host and state
        # Nova time of the newest event applied per member ("m:uuid") and group ("g:uuid"; a deleted
        # group's stays as a tombstone): events can arrive out of order (listener threads, two controllers).
        self._event_at: _LRU[str, float] = _LRU(self.opts.cache_size)
        self._inflight: dict[tuple[str, str], concurrent.futures.Future[None]] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(self.opts.lookup_workers, 'ha-guest-sgm-nova')
        self.counts: collections.Counter[str] = collections.Counter()  # Nova requests by outcome

    # -- lookups --------------------------------------------------------------------------------------

    def group_of(self, instance_uuid: str, timeout: Optional[float] = None) -> GroupView:
        """Return the instance's group with every member; NoGroup or Unavailable otherwise."""
        deadline = self._clock() + (self.opts.nova_timeout_s if timeout is None else timeout)
        group = self._resolve(self._membership, ('server', instance_uuid), deadline, self.opts.negative_ttl_s)
        if group is None:
            raise NoGroup('instance %s is in no server group' % instance_uuid)
        member_ids = self._resolve(self._groups, ('group', group), deadline, 0.0)
        if member_ids is None:
            raise NoGroup('server group %s of instance %s no longer exists' % (group, instance_uuid))
        members = self._members(member_ids, deadline)
        return GroupView(group, members)

    def _members(self, member_ids: Iterable[str], deadline: float) -> tuple[Member, ...]:
        now = self._clock()
        with self._lock:
            known = {uuid: self._states.get(uuid) for uuid in member_ids}
        missing = [uuid for uuid, item in known.items() if item is None or now - item[1] >= self.opts.cache_ttl_s]
        futures = [self._fetch(('server', uuid)) for uuid in missing]
        if futures:
            concurrent.futures.wait(futures, max(0.0, deadline - self._clock()))
        members = []
        for uuid in known:
            with self._lock:
                item = self._states.get(uuid)
            if item is None:
                # Neither Nova nor a notification told its state in time; a deleted member is simply left out.
                with self._lock:
                    gone = (self._membership.get(uuid) or (True, 0.0))[0] is None
                if gone:
                    continue
                raise Unavailable('Nova did not tell the state of member %s within %.1fs'
                                  % (uuid, self.opts.nova_timeout_s))
            members.append(item[0])
        return tuple(members)

    def _resolve(self, cache: _LRU[str, Any], key: tuple[str, str], deadline: float, negative_ttl: float) -> Any:
        """Return the cached value of ``key``, fetching it first if expired; stale beats nothing."""
        with self._lock:
            item = cache.get(key[1])
        if item is not None:
            ttl = self.opts.cache_ttl_s if item[0] is not None else negative_ttl
            if self._clock() - item[1] < ttl:
                return item[0]
        future = self._fetch(key)
        try:
            future.result(max(0.0, deadline - self._clock()))
        except concurrent.futures.TimeoutError:
            error = 'Nova did not answer within %.1fs' % self.opts.nova_timeout_s
        except Exception as exc:  # the fetch logged it
            error = 'Nova lookup failed: %s' % exc
        else:
            with self._lock:
                item = cache.get(key[1])
            return None if item is None else item[0]
        if item is not None and item[0] is not None:
            self.counts['stale_used'] += 1
            return item[0]
        raise Unavailable('%s %s: %s' % (key[0], key[1], error))

    def _fetch(self, key: tuple[str, str]) -> concurrent.futures.Future[None]:
        """Start (or join) the Nova request for ``key``."""
        with self._lock:
            future = self._inflight.get(key)
            if future is None:
                future = self._pool.submit(self._run_fetch, key, self._clock())
                self._inflight[key] = future
        return future

    def _run_fetch(self, key: tuple[str, str], started: float) -> None:
        try:
            if key[0] == 'server':
                self._fetch_server(key[1], started)
            else:
                self._fetch_group(key[1], started)
            self.counts['ok'] += 1
        except Exception as exc:
            self.counts['failed'] += 1
            LOG.warning('Nova lookup of %s %s failed: %s', key[0], key[1], exc,
                        instance_uuid=key[1] if key[0] == 'server' else None)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def _fetch_server(self, instance_uuid: str, started: float) -> None:
        from openstack import exceptions as sdk_exceptions

        compute = self._compute()
        try:
            # openstacksdk negotiates the newest microversion both sides know (Nova 34: 2.100).
            server = compute.get_server(instance_uuid)
        except sdk_exceptions.NotFoundException:
            with self._lock:
                self._membership.put(instance_uuid, None, self._clock())
                self._states.pop(instance_uuid)
            return
        groups = server.server_groups
        if groups is None:
            raise RuntimeError('Nova did not show the server\'s server_groups (compute API microversion %s or '
                               'newer needed)' % SERVER_GROUPS_MICROVERSION)
        member = Member(instance_uuid, server.compute_host or None, str(server.vm_state or ''),
                        power_state_name(server.power_state))
        now = self._clock()
        with self._lock:
            self._membership.put(instance_uuid, str(groups[0]) if groups else None, now)
            known = self._states.get(instance_uuid)
            # A notification that arrived while Nova answered is newer than the answer.
            if known is None or known[1] <= started:
                self._states.put(instance_uuid, member, now)

    def _fetch_group(self, group: str, started: float) -> None:
        from openstack import exceptions as sdk_exceptions

        compute = self._compute()
        try:
            member_ids = tuple(str(uuid) for uuid in compute.get_server_group(group).member_ids or ())
        except sdk_exceptions.NotFoundException:
            self._forget_group(group)
            return
        with self._lock:
            known = self._groups.get(group)
            if known is None or known[1] <= started:
                self._groups.put(group, member_ids, self._clock())

    def warm_up(self) -> None:
        """Authenticate and discover Nova's endpoint in the background, so the first lookup does not pay for it."""
        self._pool.submit(self._warm_up)

    def _warm_up(self) -> None:
        try:
            self._compute().get_endpoint_data()
        except Exception as exc:
            LOG.warning('Nova not reachable yet for server group messaging (%s); lookups will try again', exc)

    def _compute(self) -> Any:
        with self._lock:
            if self._connection is None:
                self._connection = self._connection_factory()
            # openstacksdk creates the proxy on first use without a lock of its own.
            return self._connection.compute

    def _connect(self) -> Any:
        from ha_guest.sinks import openstack_client

        return openstack_client.connect(self._conf)

    # -- updates from notifications -----------------------------------------------------------------

    def member(self, instance_uuid: str) -> Optional[Member]:
        """Return what is known of one instance (fresh or not), without asking Nova."""
        with self._lock:
            item = self._states.get(instance_uuid)
        return None if item is None else item[0]

    def _newer(self, key: str, at: Optional[float]) -> bool:
        """Whether an event of Nova time ``at`` is newer than every one applied to ``key`` (under the lock)."""
        if at is None:
            return True
        last = self._event_at.get(key)
        if last is not None and at < last[0]:
            self.counts['stale_events'] += 1
            return False
        self._event_at.put(key, at, self._clock())
        return True

    def update_member(self, instance_uuid: str, event: str, state: Optional[str], power_state: str,
                      host: Optional[str], host_given: bool, at: Optional[float] = None) -> Optional[Member]:
        """Record a member's new state (and host); a deleted member leaves its group.

        Return the member, or None if a newer event of it was applied already.
        """
        now = self._clock()
        with self._lock:
            if not self._newer('m:' + instance_uuid, at):
                return None
            old = self._states.get(instance_uuid)
            old_member = old[0] if old is not None else None
            if not host_given:
                host = old_member.host if old_member is not None else None
            member = Member(instance_uuid, host, state or (old_member.state if old_member else 'unknown'),
                            power_state)
            self._states.put(instance_uuid, member, now)
            if member.state == DELETED:
                group = self._membership.get(instance_uuid)
                self._membership.put(instance_uuid, None, now)
                if group is not None and group[0] is not None:
                    ids = self._groups.get(group[0])
                    if ids is not None:
                        self._groups.put(group[0], tuple(u for u in ids[0] if u != instance_uuid), ids[1])
        return member

    def add_members(self, group: str, member_ids: Iterable[str], at: Optional[float] = None) -> list[AddedMember]:
        """Record a group's member list; return each member new to it with the members that knew the group."""
        member_ids = tuple(member_ids)
        now = self._clock()
        with self._lock:
            if not self._newer('g:' + group, at):
                return []
            before = [uuid for uuid in member_ids if (self._membership.get(uuid) or (None, 0.0))[0] == group]
            self._groups.put(group, member_ids, now)
            for uuid in member_ids:
                self._membership.put(uuid, group, now)
            existing = [self._states.get(uuid) for uuid in before]
            recipients = tuple(item[0] for item in existing if item is not None)
            added = []
            for uuid in member_ids:
                if uuid in before:
                    continue
                item = self._states.get(uuid)
                # Nova adds the member while the instance is still being built.
                member = item[0] if item is not None else Member(uuid, None, 'building', '')
                added.append(AddedMember(member, recipients))
        return added

    def _forget_group(self, group: str) -> None:
        now = self._clock()
        with self._lock:
            self._groups.pop(group)
            for uuid, (known, _) in self._membership.items():
                if known == group:
                    self._membership.put(uuid, None, now)

    def delete_group(self, group: str, at: Optional[float] = None) -> None:
        """Forget a deleted group: its members are in no group from now on (unless a newer event says so)."""
        with self._lock:
            if not self._newer('g:' + group, at):
                return
        self._forget_group(group)

    # -- life ------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Return cache sizes and Nova request counts."""
        with self._lock:
            sizes = {'instances': len(self._membership), 'groups': len(self._groups), 'states': len(self._states)}
        return dict(sizes, **{'nova_%s' % name: count for name, count in self.counts.items()})

    def close(self) -> None:
        """Stop the lookup threads (a request in flight ends on its own timeout) and close the connection."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                LOG.exception('closing the Nova API connection failed')
