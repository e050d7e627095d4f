"""Directory discovery: socket files, suspension markers and features files in a folder."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any, List, Tuple

import fixtures
import testtools
from oslo_config import cfg
from stevedore import driver as stevedore_driver

from ha_guest.compute.discovery import base
from ha_guest.compute.discovery.directory import MAX_FEATURES_BYTES, DirectoryDiscovery
from ha_guest.conf import compute as compute_conf
from tests.unit.compute.base import make_tempdir

A = "11111111-1111-4111-8111-111111111111"
B = "22222222-2222-4222-8222-222222222222"
HEARTBEAT_ONLY = base.LEGACY_FEATURES
SGM_ONLY = base.Features(heartbeat=False, server_group_messaging=True)
BOTH = base.Features(heartbeat=True, server_group_messaging=True)


def added(instance: str, suspended: bool = False, features: base.Features = HEARTBEAT_ONLY) -> Tuple[Any, ...]:
    """The call a Recorder records for channel_added."""
    return ("added", instance, instance + ".sock", suspended, features)


class Recorder:
    """A discovery listener that records every call (thread-safe)."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def channel_added(self, instance_uuid: str, socket_path: str, suspended: bool = False,
                      features: base.Features = base.LEGACY_FEATURES) -> None:
        with self._lock:
            self.calls.append(("added", instance_uuid, os.path.basename(socket_path), suspended, features))

    def channel_removed(self, instance_uuid: str) -> None:
        with self._lock:
            self.calls.append(("removed", instance_uuid))

    def instance_suspended(self, instance_uuid: str, reason: str) -> None:
        with self._lock:
            self.calls.append(("suspended", instance_uuid, reason))

    def instance_resumed(self, instance_uuid: str) -> None:
        with self._lock:
            self.calls.append(("resumed", instance_uuid))

    def take(self) -> List[Tuple[Any, ...]]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls


def make_conf(path: str, poll_s: float = 0.2) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    compute_conf.register_opts(conf)
    conf([])
    conf.set_override("directory_path", path, "compute")
    conf.set_override("directory_poll_s", poll_s, "compute")
    conf.set_override("discovery_driver", "directory", "compute")
    return conf


class TestDirectoryDiscovery(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.path = make_tempdir(self)
        self.listener = Recorder()
        self.driver = DirectoryDiscovery(make_conf(self.path), self.listener)
        self.sockets: dict[str, socket.socket] = {}

    def bind(self, name: str) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(os.path.join(self.path, name + ".sock"))
        self.addCleanup(sock.close)
        self.sockets[name] = sock

    def unlink(self, name: str) -> None:
        os.unlink(os.path.join(self.path, name))

    def touch(self, name: str) -> None:
        open(os.path.join(self.path, name), "w").close()

    def test_is_a_discovery_driver(self) -> None:
        self.assertIsInstance(self.driver, base.DiscoveryDriver)

    def test_added_and_removed(self) -> None:
        self.bind(A)
        self.driver.poll()
        self.assertEqual([added(A)], self.listener.take())
        self.driver.poll()
        self.assertEqual([], self.listener.take())
        self.bind(B)
        self.unlink(A + ".sock")
        self.driver.poll()
        self.assertEqual([("removed", A), added(B)], self.listener.take())

    def test_ignores_regular_files_and_hidden_names(self) -> None:
        self.touch("33333333-3333-4333-8333-333333333333.sock")
        self.touch(".tmp.sock")
        self.touch("readme.txt")
        self.driver.poll()
        self.assertEqual([], self.listener.take())

    def test_suspension_markers(self) -> None:
        self.bind(A)
        self.driver.poll()
        self.listener.take()
        self.touch(A + ".suspended")
        self.driver.poll()
        self.assertEqual([("suspended", A, base.PAUSED)], self.listener.take())
        self.driver.poll()
        self.assertEqual([], self.listener.take())
        self.unlink(A + ".suspended")
        self.driver.poll()
        self.assertEqual([("resumed", A)], self.listener.take())

    def test_added_while_suspended(self) -> None:
        self.touch(A + ".suspended")
        self.driver.poll()
        self.assertEqual([], self.listener.take())  # a marker without a socket means nothing
        self.bind(A)
        self.driver.poll()
        self.assertEqual([added(A, suspended=True)], self.listener.take())

    def test_socket_gone_and_back_between_polls(self) -> None:
        self.bind(A)
        self.driver.poll()
        self.listener.take()
        self.sockets[A].close()
        self.unlink(A + ".sock")
        self.driver.poll()
        self.bind(A)
        self.driver.poll()
        self.assertEqual([("removed", A), added(A)], self.listener.take())

    def test_missing_folder_is_not_an_error(self) -> None:
        driver = DirectoryDiscovery(make_conf(os.path.join(self.path, "nope")), self.listener)
        driver.poll()
        self.assertEqual([], self.listener.take())

    def test_thread_reports_existing_then_follows(self) -> None:
        self.bind(A)
        driver = DirectoryDiscovery(make_conf(self.path, poll_s=0.05), self.listener)
        driver.start()
        self.addCleanup(driver.stop)
        self.assertEqual([added(A)], self.listener.take())  # before start() returns
        self.bind(B)
        deadline = time.monotonic() + 5
        while not self.listener.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual([added(B)], self.listener.take())
        driver.stop()
        driver.stop()

    def write_features(self, name: str, content: Any) -> None:
        """Write <name>.features atomically (hidden temporary name, then rename), as the docs advise."""
        text = content if isinstance(content, (str, bytes)) else json.dumps(content)
        data = text.encode("utf-8") if isinstance(text, str) else text
        temporary = os.path.join(self.path, ".%s.features.tmp" % name)
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, os.path.join(self.path, name + ".features"))

    def test_features_file_read_with_the_socket(self) -> None:
        self.write_features(A, {"heartbeat": False, "server_group_messaging": True})
        self.write_features(B, {"heartbeat": True, "server_group_messaging": True})
        self.bind(A)
        self.bind(B)
        self.driver.poll()
        self.assertEqual([added(A, features=SGM_ONLY), added(B, features=BOTH)], self.listener.take())
        self.driver.poll()
        self.assertEqual([], self.listener.take())

    def test_no_features_file_is_heartbeat_only(self) -> None:
        self.bind(A)
        self.driver.poll()
        self.assertEqual([("added", A, A + ".sock", False, base.Features(True, False))], self.listener.take())

    def test_missing_keys_take_their_defaults(self) -> None:
        cases = [({}, HEARTBEAT_ONLY),
                 ({"server_group_messaging": True}, BOTH),
                 ({"heartbeat": False}, base.Features(heartbeat=False, server_group_messaging=False)),
                 ({"heartbeat": False, "server_group_messaging": True, "future_feature": 3}, SGM_ONLY)]
        for content, expected in cases:
            self.write_features(A, content)
            driver = DirectoryDiscovery(make_conf(self.path), self.listener)
            if A not in self.sockets:
                self.bind(A)
            driver.poll()
            self.assertEqual([added(A, features=expected)], self.listener.take(), content)

    def test_features_file_appears_changes_and_goes(self) -> None:
        self.bind(A)
        self.driver.poll()
        self.assertEqual([added(A)], self.listener.take())
        self.write_features(A, {"heartbeat": True, "server_group_messaging": True})
        self.driver.poll()
        self.assertEqual([added(A, features=BOTH)], self.listener.take())
        self.driver.poll()
        self.assertEqual([], self.listener.take())
        self.write_features(A, {"heartbeat": False, "server_group_messaging": True})
        self.driver.poll()
        self.assertEqual([added(A, features=SGM_ONLY)], self.listener.take())
        self.unlink(A + ".features")
        self.driver.poll()
        self.assertEqual([added(A)], self.listener.take())

    def test_rewritten_in_place_is_noticed(self) -> None:
        self.write_features(A, {"heartbeat": True, "server_group_messaging": False})
        self.bind(A)
        self.driver.poll()
        self.listener.take()
        # Same inode, other size: a writer that ignored the advice to rename.
        with open(os.path.join(self.path, A + ".features"), "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"heartbeat": True, "server_group_messaging": True}))
        self.driver.poll()
        self.assertEqual([added(A, features=BOTH)], self.listener.take())

    def test_same_features_in_a_new_file_report_nothing(self) -> None:
        self.bind(A)
        self.driver.poll()
        self.listener.take()
        self.write_features(A, {"heartbeat": True})  # what no file means anyway
        self.driver.poll()
        self.write_features(A, {"heartbeat": True, "server_group_messaging": False, "note": "same"})
        self.driver.poll()
        self.assertEqual([], self.listener.take())

    def test_update_keeps_the_suspension(self) -> None:
        self.touch(A + ".suspended")
        self.bind(A)
        self.driver.poll()
        self.assertEqual([added(A, suspended=True)], self.listener.take())
        self.write_features(A, {"server_group_messaging": True})
        self.driver.poll()
        self.assertEqual([added(A, suspended=True, features=BOTH)], self.listener.take())
        # Features and suspension change in one poll: the update, then the resumption.
        self.unlink(A + ".suspended")
        self.write_features(A, {"heartbeat": False, "server_group_messaging": True})
        self.driver.poll()
        self.assertEqual([added(A, suspended=True, features=SGM_ONLY), ("resumed", A)], self.listener.take())

    def test_features_file_without_socket_means_nothing(self) -> None:
        self.write_features(A, {"server_group_messaging": True})
        self.driver.poll()
        self.assertEqual([], self.listener.take())
        self.unlink(A + ".features")
        self.driver.poll()
        self.bind(A)
        self.driver.poll()
        self.assertEqual([added(A)], self.listener.take())

    def test_removed_channel_forgets_its_features(self) -> None:
        self.write_features(A, {"server_group_messaging": True})
        self.bind(A)
        self.driver.poll()
        self.sockets[A].close()
        self.unlink(A + ".sock")
        self.driver.poll()
        self.bind(A)
        self.driver.poll()
        self.assertEqual([added(A, features=BOTH), ("removed", A), added(A, features=BOTH)], self.listener.take())

    def test_bad_files_are_heartbeat_only_and_logged_rate_limited(self) -> None:
        log = self.useFixture(fixtures.FakeLogger(level=logging.WARNING))
        bad = ['{"heartbeat": "yes"}',
               '{"server_group_messaging": 1}',
               '{"heartbeat": null}',
               '["heartbeat"]',
               'true',
               '{"heartbeat": tru',
               b'\xff\xfe{}',
               '',
               '{"heartbeat": false, "pad": "%s"}' % ("x" * MAX_FEATURES_BYTES)]
        self.bind(A)
        self.driver.poll()
        self.listener.take()
        for content in bad:
            # Start each case from SGM on, so falling back to heartbeat only is a visible change.
            self.write_features(A, {"heartbeat": False, "server_group_messaging": True})
            self.driver.poll()
            self.assertEqual([added(A, features=SGM_ONLY)], self.listener.take())
            self.write_features(A, content)
            self.driver.poll()
            self.assertEqual([added(A)], self.listener.take(), content)
            self.driver.poll()  # unchanged: neither read nor logged again
            self.assertEqual([], self.listener.take())
        # Nine bad files within the gate's period: one warning line.
        warnings = [line for line in log.output.splitlines() if "unusable features file" in line]
        self.assertEqual(1, len(warnings), log.output)
        self.assertIn(A + ".features", warnings[0])
        self.assertEqual(len(bad) - 1, self.driver._bad_file_log.suppressed)

    def test_bad_file_warning_for_a_new_channel(self) -> None:
        log = self.useFixture(fixtures.FakeLogger(level=logging.WARNING))
        self.write_features(A, "not json")
        self.bind(A)
        self.driver.poll()
        self.assertEqual([added(A)], self.listener.take())
        self.assertIn("unusable features file", log.output)

    def test_largest_allowed_file(self) -> None:
        content = '{"server_group_messaging": true, "pad": "%s"}'
        padding = MAX_FEATURES_BYTES - len(content % "")
        self.write_features(A, content % ("x" * padding))
        self.assertEqual(MAX_FEATURES_BYTES, os.path.getsize(os.path.join(self.path, A + ".features")))
        self.bind(A)
        self.driver.poll()
        self.assertEqual([added(A, features=BOTH)], self.listener.take())

    def test_loaded_through_stevedore(self) -> None:
        manager = stevedore_driver.DriverManager(
            "ha_guest.compute.discovery", "directory", invoke_on_load=True,
            invoke_args=(make_conf(self.path), self.listener))
        self.assertIsInstance(manager.driver, DirectoryDiscovery)
