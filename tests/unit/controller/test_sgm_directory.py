"""The member directory against the stub Nova: lookups, bounds, coalescing, caching, notification updates."""

from __future__ import annotations

import threading
import time

import fixtures
import testtools
from oslo_config import cfg

from ha_guest import conf as ha_conf
from ha_guest.controller.sgm_directory import Member, MemberDirectory, NoGroup, Unavailable, power_state_name
from ha_guest.testing.openstack_stub import OpenStackStub, configure_nova_api


class DirectoryTestCase(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(fixtures.Timeout(30, gentle=True))
        self.stub = OpenStackStub()
        self.stub.start()
        self.addCleanup(self.stub.stop)
        self.conf = cfg.ConfigOpts()
        ha_conf.register_all(self.conf)
        self.conf([], default_config_files=[], default_config_dirs=[])
        configure_nova_api(self.conf, self.stub)
        self.a = self.stub.add_server(host='cmp-1')
        self.b = self.stub.add_server(host='cmp-2', vm_state='stopped', power_state='shutdown')
        self.group = self.stub.add_group([self.a, self.b])

    def directory(self, **sgm: object) -> MemberDirectory:
        for name, value in sgm.items():
            self.conf.set_override(name, value, group='sgm')
        directory = MemberDirectory(self.conf)
        self.addCleanup(directory.close)
        return directory

    def gets(self, suffix: str) -> int:
        return len(self.stub.matching('GET', suffix))


class TestLookups(DirectoryTestCase):

    def test_group_members_hosts_and_states(self) -> None:
        view = self.directory().group_of(self.a.uuid)
        self.assertEqual(self.group.uuid, view.group)
        self.assertEqual([Member(self.a.uuid, 'cmp-1', 'active', 'running'),
                          Member(self.b.uuid, 'cmp-2', 'stopped', 'shutdown')], list(view.members))

    def test_cached_until_ttl(self) -> None:
        directory = self.directory()
        directory.group_of(self.a.uuid)
        directory.group_of(self.b.uuid)
        self.assertEqual((1, 1), (self.gets('/servers/%s' % self.a.uuid), self.gets(self.group.uuid)))

    def test_negative_answers_cached(self) -> None:
        lonely = self.stub.add_server()
        directory = self.directory()
        for instance in (lonely.uuid, lonely.uuid, '00000000-0000-0000-0000-000000000001'):
            self.assertRaises(NoGroup, directory.group_of, instance)
        self.assertEqual(1, self.gets('/servers/%s' % lonely.uuid))
        self.assertRaises(NoGroup, directory.group_of, '00000000-0000-0000-0000-000000000001')
        self.assertEqual(1, self.gets('/servers/00000000-0000-0000-0000-000000000001'))

    def test_slow_nova_is_unavailable_within_the_bound_and_fills_the_cache_later(self) -> None:
        self.stub.change_server(self.a.uuid, get_delay=0.6)
        directory = self.directory(nova_timeout_s=0.2)
        self.assertRaises(NoGroup, directory.group_of, self.stub.add_server().uuid, 5.0)  # token, discovery
        started = time.monotonic()
        self.assertRaises(Unavailable, directory.group_of, self.a.uuid)
        self.assertLess(time.monotonic() - started, 0.5)
        time.sleep(0.8)
        self.assertEqual(self.group.uuid, directory.group_of(self.a.uuid).group)

    def test_nova_down_is_unavailable_but_stale_entries_are_used(self) -> None:
        directory = self.directory(cache_ttl_s=1.0, nova_timeout_s=0.2)
        directory.group_of(self.a.uuid, 5.0)
        # Nova stops answering in time (the stub keeps serving open connections after stop(): slow it instead).
        for server in (self.a, self.b):
            self.stub.change_server(server.uuid, get_delay=3.0)
        self.group.get_delay = 3.0
        time.sleep(1.1)
        self.assertEqual(2, len(directory.group_of(self.a.uuid).members))  # expired, no answer: stale beats none
        self.assertRaises(Unavailable, directory.group_of, self.stub.add_server(get_delay=3.0).uuid)
        self.assertEqual(2, directory.stats()['nova_stale_used'])  # the instance's group and the group's members

    def test_concurrent_lookups_coalesce(self) -> None:
        self.stub.change_server(self.a.uuid, get_delay=0.3)
        directory = self.directory()
        results: list[object] = []
        threads = [threading.Thread(target=lambda: results.append(directory.group_of(self.a.uuid).group))
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        self.assertEqual([self.group.uuid] * 8, results)
        self.assertEqual(1, self.gets('/servers/%s' % self.a.uuid))

    def test_size_bound(self) -> None:
        directory = self.directory(cache_size=10)
        for _ in range(15):
            self.assertRaises(NoGroup, directory.group_of, self.stub.add_server().uuid)
        self.assertEqual(10, directory.stats()['instances'])

    def test_unconfigured_nova_is_unavailable(self) -> None:
        self.conf.clear_override('auth_type', group='nova_api')
        self.assertRaises(Unavailable, self.directory().group_of, self.a.uuid)

    def test_power_state_names(self) -> None:
        self.assertEqual(['pending', 'running', 'paused', 'shutdown', 'crashed', 'suspended', '', '', ''],
                         [power_state_name(v) for v in (0, 1, 3, 4, 6, 7, 2, True, 'bogus')])


class TestUpdates(DirectoryTestCase):

    def test_update_member_wins_over_nova(self) -> None:
        directory = self.directory()
        directory.update_member(self.b.uuid, 'instance.power_on.end', 'active', 'running', 'cmp-3', True)
        view = directory.group_of(self.a.uuid)  # Nova still says stopped on cmp-2
        self.assertIn(Member(self.b.uuid, 'cmp-3', 'active', 'running'), view.members)
        self.assertEqual(0, self.gets('/servers/%s' % self.b.uuid))

    def test_host_kept_when_not_given(self) -> None:
        directory = self.directory()
        directory.group_of(self.a.uuid)
        member = directory.update_member(self.a.uuid, 'instance.reboot.start', 'active', 'running', None, False)
        self.assertEqual('cmp-1', member.host)

    def test_delete_leaves_the_group(self) -> None:
        directory = self.directory()
        directory.group_of(self.a.uuid)
        directory.update_member(self.b.uuid, 'instance.delete.end', 'deleted', '', None, False)
        self.assertEqual([self.a.uuid], [m.uuid for m in directory.group_of(self.a.uuid).members])
        self.assertRaises(NoGroup, directory.group_of, self.b.uuid)

    def test_add_members_tells_who_is_new(self) -> None:
        directory = self.directory()
        directory.group_of(self.a.uuid)
        new = self.stub.add_server(host='cmp-4')
        added = directory.add_members(self.group.uuid, [self.a.uuid, self.b.uuid, new.uuid])
        self.assertEqual(1, len(added))
        self.assertEqual(Member(new.uuid, None, 'building', ''), added[0].member)
        self.assertEqual({self.a.uuid, self.b.uuid}, {m.uuid for m in added[0].recipients})
        # A group nobody here knew: nobody to tell.
        self.assertEqual([], [a.recipients for a in directory.add_members('1' * 32, [new.uuid]) if a.recipients])

    def test_delete_group(self) -> None:
        directory = self.directory()
        directory.group_of(self.a.uuid)
        directory.delete_group(self.group.uuid)
        self.assertRaises(NoGroup, directory.group_of, self.a.uuid)

    def test_an_older_event_never_overwrites_a_newer_one(self) -> None:
        directory = self.directory()
        directory.group_of(self.a.uuid)
        newer = directory.update_member(self.b.uuid, 'instance.power_on.end', 'active', 'running', None, False, 20.0)
        self.assertIsNotNone(newer)
        self.assertIsNone(directory.update_member(self.b.uuid, 'instance.power_off.end', 'stopped', 'shutdown',
                                                  None, False, 10.0))  # sent before, arrived after
        self.assertEqual(('active', 'running'), (directory.member(self.b.uuid).state,
                                                 directory.member(self.b.uuid).power_state))
        self.assertEqual(1, directory.stats()['nova_stale_events'])

    def test_a_deleted_group_stays_deleted_for_older_events(self) -> None:
        directory = self.directory()
        view = directory.group_of(self.a.uuid)
        self.stub.delete_group(view.group)
        directory.delete_group(view.group, 30.0)
        self.assertEqual([], directory.add_members(view.group, [self.a.uuid, self.b.uuid], 29.0))
        self.assertRaises(NoGroup, directory.group_of, self.a.uuid)
