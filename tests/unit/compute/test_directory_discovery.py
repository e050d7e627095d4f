"""Directory discovery: socket files and suspension markers in a folder."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any, List, Tuple

import testtools
from oslo_config import cfg
from stevedore import driver as stevedore_driver

from ha_guest.compute.discovery import base
from ha_guest.compute.discovery.directory import DirectoryDiscovery
from ha_guest.conf import compute as compute_conf
from tests.unit.compute.base import make_tempdir

A = "11111111-1111-4111-8111-111111111111"
B = "22222222-2222-4222-8222-222222222222"


class Recorder:
    """A discovery listener that records every call (thread-safe)."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def channel_added(self, instance_uuid: str, socket_path: str, suspended: bool = False) -> None:
        with self._lock:
            self.calls.append(("added", instance_uuid, os.path.basename(socket_path), suspended))

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
        self.assertEqual([("added", A, A + ".sock", False)], self.listener.take())
        self.driver.poll()
        self.assertEqual([], self.listener.take())
        self.bind(B)
        self.unlink(A + ".sock")
        self.driver.poll()
        self.assertEqual([("removed", A), ("added", B, B + ".sock", False)], self.listener.take())

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
        self.assertEqual([("added", A, A + ".sock", True)], self.listener.take())

    def test_socket_gone_and_back_between_polls(self) -> None:
        self.bind(A)
        self.driver.poll()
        self.listener.take()
        self.sockets[A].close()
        self.unlink(A + ".sock")
        self.driver.poll()
        self.bind(A)
        self.driver.poll()
        self.assertEqual([("removed", A), ("added", A, A + ".sock", False)], self.listener.take())

    def test_missing_folder_is_not_an_error(self) -> None:
        driver = DirectoryDiscovery(make_conf(os.path.join(self.path, "nope")), self.listener)
        driver.poll()
        self.assertEqual([], self.listener.take())

    def test_thread_reports_existing_then_follows(self) -> None:
        self.bind(A)
        driver = DirectoryDiscovery(make_conf(self.path, poll_s=0.05), self.listener)
        driver.start()
        self.addCleanup(driver.stop)
        self.assertEqual([("added", A, A + ".sock", False)], self.listener.take())  # before start() returns
        self.bind(B)
        deadline = time.monotonic() + 5
        while not self.listener.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual([("added", B, B + ".sock", False)], self.listener.take())
        driver.stop()
        driver.stop()

    def test_loaded_through_stevedore(self) -> None:
        manager = stevedore_driver.DriverManager(
            "ha_guest.compute.discovery", "directory", invoke_on_load=True,
            invoke_args=(make_conf(self.path), self.listener))
        self.assertIsInstance(manager.driver, DirectoryDiscovery)
