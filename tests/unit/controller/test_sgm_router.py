"""The SGM router with a fake directory, fake compute agents and fake peers: casts, nacks, counters."""

from __future__ import annotations

import base64
import uuid
from typing import Any, Optional

import testtools
from oslo_config import cfg

from ha_guest import conf as ha_conf
from ha_guest.controller.sgm_directory import AddedMember, GroupView, Member, NoGroup, Unavailable
from ha_guest.controller.sgm_router import SgmRouter


def _uuid() -> str:
    return str(uuid.uuid4())


class FakeDirectory:
    """group_of() from a dict; updates recorded."""

    def __init__(self) -> None:
        self.views: dict[str, Any] = {}
        self.updates: list[tuple[Any, ...]] = []
        self.added: list[AddedMember] = []

    def group_of(self, instance_uuid: str, timeout: Optional[float] = None) -> GroupView:
        view = self.views.get(instance_uuid, NoGroup('no group'))
        if isinstance(view, Exception):
            raise view
        return view

    def update_member(self, *args: Any) -> Member:
        self.updates.append(('member',) + args[:-1])  # the event time last
        uuid_, _, state, power_state, host, _, _ = args
        return Member(uuid_, host, state, power_state)

    def add_members(self, group: str, members: list[str], at: Optional[float] = None) -> list[AddedMember]:
        self.updates.append(('add', group, members))
        return self.added

    def delete_group(self, group: str, at: Optional[float] = None) -> None:
        self.updates.append(('delete', group))

    def stats(self) -> dict[str, int]:
        return {}


class FakeCompute:

    def __init__(self) -> None:
        self.casts: list[tuple[str, str, list[dict[str, Any]], Optional[int]]] = []
        self.fail = False

    def _cast(self, method: str, host: str, items: list[dict[str, Any]], retry: Optional[int]) -> None:
        if self.fail:
            raise ConnectionError('broker down')
        self.casts.append((method, host, items, retry))

    def sgm_deliver(self, ctxt: Any, host: str, deliveries: list[dict[str, Any]], retry: Optional[int] = None) -> None:
        self._cast('deliver', host, deliveries, retry)

    def sgm_notify(self, ctxt: Any, host: str, notifications: list[dict[str, Any]],
                   retry: Optional[int] = None) -> None:
        self._cast('notify', host, notifications, retry)

    def sgm_nack(self, ctxt: Any, host: str, nacks: list[dict[str, Any]], retry: Optional[int] = None) -> None:
        self._cast('nack', host, nacks, retry)


class FakePeers:
    origin = 'me'

    def __init__(self) -> None:
        self.sent: list[list[dict[str, Any]]] = []

    def sync_members(self, updates: list[dict[str, Any]], retry: Optional[int] = None) -> None:
        self.sent.append(updates)


def broadcast(sender: str, host: str, ref_seq: int = 1) -> dict[str, Any]:
    return {'sender': sender, 'host': host, 'session': 's', 'ref_seq': ref_seq,
            'payload': base64.b64encode(b'x').decode(), 'stamp': 10 + ref_seq, 'sent_at': 1.0}


class TestRouter(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.conf = cfg.ConfigOpts()
        ha_conf.register_all(self.conf)
        self.conf([], default_config_files=[], default_config_dirs=[])
        self.directory, self.compute, self.peers = FakeDirectory(), FakeCompute(), FakePeers()
        self.router = SgmRouter(self.conf, self.directory, self.compute, self.peers)  # type: ignore[arg-type]
        self.a, self.b, self.c, self.d = (_uuid() for _ in range(4))
        members = (Member(self.a, 'h1', 'active', 'running'), Member(self.b, 'h2', 'active', 'running'),
                   Member(self.c, 'h2', 'stopped', 'shutdown'), Member(self.d, None, 'shelved_offloaded', ''))
        view = GroupView('g', members)
        self.directory.views.update({self.a: view, self.b: view, self.c: view, self.d: view})

    def test_batch_one_cast_per_host(self) -> None:
        lonely, down = _uuid(), _uuid()
        self.directory.views[down] = Unavailable('Nova down')
        self.router.broadcast([broadcast(self.a, 'h1', 1), broadcast(self.b, 'h2', 2), broadcast(self.a, 'h1', 3),
                               broadcast(lonely, 'h3', 4), broadcast(down, 'h3', 5), {'sender': 'junk'}])
        casts = {(method, host): items for method, host, items, _ in self.compute.casts}
        self.assertEqual(3, len(self.compute.casts))  # deliver h1, deliver h2, nack h3
        self.assertEqual([(self.a, [self.b, self.c], 11), (self.b, [self.c], 12), (self.a, [self.b, self.c], 13)],
                         [(d['sender'], d['recipients'], d['stamp']) for d in casts[('deliver', 'h2')]])
        self.assertEqual([(self.b, [self.a], 12)],
                         [(d['sender'], d['recipients'], d['stamp']) for d in casts[('deliver', 'h1')]])
        self.assertEqual([(lonely, 'no_group', 4), (down, 'unavailable', 5)],
                         [(n['instance_uuid'], n['reason'], n['ref_seq']) for n in casts[('nack', 'h3')]])
        self.assertEqual({'delivered': 3, 'no_group': 1, 'unavailable': 1, 'invalid': 1},
                         self.router.stats()['broadcasts'])
        self.assertEqual({1}, {retry for *_, retry in self.compute.casts})  # [sgm] cast_retry

    def test_failed_cast_is_counted_not_raised(self) -> None:
        self.compute.fail = True
        self.router.broadcast([broadcast(self.a, 'h1')])
        self.assertEqual(1, self.router.stats()['broadcasts']['deliver_cast_failed'])

    def test_disabled(self) -> None:
        self.conf.set_override('enabled', False, group='sgm')
        self.router.broadcast([broadcast(self.a, 'h1')])
        self.assertEqual([('nack', 'h1', 'unavailable')], [(m, h, i[0]['reason']) for m, h, i, _ in self.compute.casts])
        self.assertEqual('unavailable', self.router.status(self.a)['nack'])

    def test_status(self) -> None:
        self.assertEqual([self.a, self.b, self.c, self.d], [m['uuid'] for m in self.router.status(self.a)['members']])
        self.assertEqual('no_group', self.router.status(_uuid())['nack'])
        big = _uuid()
        self.directory.views[big] = GroupView('big', tuple(Member(_uuid(), 'h', 'active', '') for _ in range(33)))
        self.assertEqual('group_too_large', self.router.status(big)['nack'])

    def test_member_event_to_peers_by_host_and_to_controllers(self) -> None:
        update = {'kind': 'member', 'event': 'instance.power_off.end', 'member': self.b, 'state': 'stopped',
                  'power_state': 'shutdown', 'host': 'h2', 'host_given': True}
        self.router.notification(update)
        self.assertEqual(
            [('notify', 'h1', [self.a]), ('notify', 'h2', [self.c])],
            sorted((m, h, i[0]['recipients']) for m, h, i, _ in self.compute.casts))
        self.assertEqual({'member': self.b, 'event': 'instance.power_off.end', 'state': 'stopped',
                          'power_state': 'shutdown'},
                         {k: v for k, v in self.compute.casts[0][2][0].items() if k != 'recipients'})
        self.assertEqual([[update]], self.peers.sent)

    def test_add_member_and_group_delete(self) -> None:
        new = Member(_uuid(), None, 'building', '')
        self.directory.added = [AddedMember(new, (Member(self.a, 'h1', 'active', 'running'), new))]
        update = {'kind': 'add_member', 'event': 'server_group.add_member', 'group': 'g', 'members': [self.a, new.uuid]}
        self.router.notification(update)
        self.assertEqual([('notify', 'h1', [self.a], new.uuid, 'building')],
                         [(m, h, i[0]['recipients'], i[0]['member'], i[0]['state'])
                          for m, h, i, _ in self.compute.casts])
        self.router.notification({'kind': 'group_delete', 'event': 'server_group.delete', 'group': 'g'})
        self.assertEqual(1, len(self.compute.casts))
        self.assertEqual(2, len(self.peers.sent))

    def test_peer_updates_applied_own_skipped(self) -> None:
        update = {'kind': 'group_delete', 'event': 'server_group.delete', 'group': _uuid()}
        self.router.sync_members('me', [update])
        self.assertEqual([], self.directory.updates)
        self.router.sync_members('other', [update, {'kind': 'bogus'}])
        self.assertEqual([('delete', update['group'])], self.directory.updates)
        self.assertEqual([], self.compute.casts)
