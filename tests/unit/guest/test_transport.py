"""Port discovery against a fake sysfs tree, channel I/O and reconnect backoff."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import time
import tty
from typing import Callable, List, Optional

from ha_guest.guest import transport
from tests.unit.guest.base import AsyncTestCase, wait_until

NAME = "org.openstack.ha_guest.0"


class TestFindPort(AsyncTestCase):
    """find_port prefers the udev link, else scans sysfs for the name."""

    def setUp(self) -> None:
        root = self.make_tempdir()
        self.sysfs = os.path.join(root, "sys", "class", "virtio-ports")
        self.dev = os.path.join(root, "dev")
        self.links = os.path.join(self.dev, "virtio-ports")
        for port, name in (("vport0p1", "org.qemu.guest_agent.0"), ("vport1p1", NAME), ("vport1p2", "")):
            os.makedirs(os.path.join(self.sysfs, port))
            with open(os.path.join(self.sysfs, port, "name"), "w") as handle:
                handle.write(name + "\n")
            os.makedirs(self.dev, exist_ok=True)
            open(os.path.join(self.dev, port), "w").close()

    def find(self, name: str = NAME, make_link: bool = False) -> Optional[str]:
        return transport.find_port(name, self.links, self.sysfs, self.dev, make_link=make_link)

    def test_found_by_sysfs_name(self) -> None:
        self.assertEqual(os.path.join(self.dev, "vport1p1"), self.find())
        self.assertFalse(os.path.exists(os.path.join(self.links, NAME)))

    def test_not_found(self) -> None:
        self.assertIsNone(self.find("org.example.none"))

    def test_link_created_and_preferred(self) -> None:
        self.assertEqual(os.path.join(self.dev, "vport1p1"), self.find(make_link=True))
        link = os.path.join(self.links, NAME)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(os.path.realpath(os.path.join(self.dev, "vport1p1")), os.path.realpath(link))
        self.assertEqual(link, self.find())

    def test_link_failure_ignored(self) -> None:
        # A file where the link folder should be: making the link fails quietly.
        open(self.links, "w").close()
        self.assertEqual(os.path.join(self.dev, "vport1p1"), self.find(make_link=True))

    def test_missing_sysfs(self) -> None:
        self.assertIsNone(transport.find_port(NAME, self.links, "/nonexistent/sys", self.dev))


class Recorder:
    """Collects what a Channel reports."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.lost: List[str] = []

    def on_data(self, data: bytes) -> None:
        self.data += data

    def on_lost(self, reason: str) -> None:
        self.lost.append(reason)


class TestChannel(AsyncTestCase):
    """Non-blocking reads and writes on a connected socket or a device."""

    def test_socket_round_trip_and_eof(self) -> None:
        path = os.path.join(self.make_tempdir(), "chan.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        self.addCleanup(server.close)
        rec = Recorder()

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            channel = await transport.open_channel(path, rec.on_data, rec.on_lost)
            peer, _ = await loop.run_in_executor(None, server.accept)
            try:
                self.assertTrue(channel.send(b"hello\n"))
                peer.settimeout(2)
                self.assertEqual(b"hello\n", peer.recv(100))
                peer.sendall(b"abc\ndef\n")
                await wait_until(lambda: rec.data == b"abc\ndef\n")
            finally:
                peer.close()
            await wait_until(lambda: rec.lost)
            self.assertEqual(["end of file"], rec.lost)
            self.assertTrue(channel.closed)
            self.assertFalse(channel.send(b"late\n"))

        self.run_async(scenario())

    def test_write_buffer_overflow_drops_channel(self) -> None:
        a, b = socket.socketpair()
        self.addCleanup(b.close)
        a.setblocking(False)
        rec = Recorder()

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            channel = transport.Channel(loop, a.fileno(), "pair", a, rec.on_data, rec.on_lost)
            chunk = b"x" * 4096
            for _ in range(10000):
                if not channel.send(chunk):
                    break
                self.assertLessEqual(channel.pending, transport.MAX_WRITE_BUFFER)
            self.assertTrue(channel.closed)
            self.assertEqual(1, len(rec.lost))
            self.assertIn("write buffer", rec.lost[0])

        self.run_async(scenario())

    def test_buffered_bytes_flushed_when_peer_reads(self) -> None:
        a, b = socket.socketpair()
        self.addCleanup(b.close)
        a.setblocking(False)
        rec = Recorder()

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            channel = transport.Channel(loop, a.fileno(), "pair", a, rec.on_data, rec.on_lost)
            total = 0
            while channel.pending == 0:
                self.assertTrue(channel.send(b"y" * 1024))
                total += 1024
            self.assertTrue(channel.send(b"z" * 1024))
            total += 1024
            received = 0
            b.setblocking(False)
            while received < total:
                try:
                    received += len(b.recv(65536))
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            self.assertEqual(0, channel.pending)
            channel.close()
            self.assertEqual([], rec.lost)

        self.run_async(scenario())

    def test_char_device_round_trip(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # No echo, no line discipline: bytes pass as they are.
        path = os.ttyname(slave)
        rec = Recorder()

        async def scenario() -> None:
            channel = await transport.open_channel(path, rec.on_data, rec.on_lost)
            os.close(slave)
            try:
                os.write(master, b"ping\n")
                await wait_until(lambda: rec.data == b"ping\n")
                self.assertTrue(channel.send(b"pong\n"))
                await wait_until(lambda: select.select([master], [], [], 0)[0])
                self.assertEqual(b"pong\n", os.read(master, 100))
            finally:
                os.close(master)
            # A pty whose master is gone reads EIO: the channel is lost, not spun on.
            await wait_until(lambda: rec.lost)
            self.assertTrue(channel.closed)

        self.run_async(scenario())

    def test_unpollable_file_refused(self) -> None:
        path = os.path.join(self.make_tempdir(), "plain")
        open(path, "w").close()
        before = len(os.listdir("/proc/self/fd"))

        async def scenario() -> None:
            with self.assertRaises(OSError):
                await transport.open_channel(path, lambda d: None, lambda r: None)

        self.run_async(scenario())
        self.assertEqual(before, len(os.listdir("/proc/self/fd")), "descriptor leaked")


class TestConnector(AsyncTestCase):
    """Reconnects back off instead of spinning."""

    def run_connector(self, path: Optional[str], seconds: float, on_tick: Optional[Callable[[], None]] = None,
                      server: Optional[socket.socket] = None) -> transport.Connector:
        opened: List[transport.Channel] = []
        connector = transport.Connector(lambda: path, opened.append, lambda data: None, lambda reason: None)

        async def scenario() -> None:
            if server is not None and on_tick is not None:
                server.setblocking(False)
                asyncio.get_running_loop().add_reader(server.fileno(), on_tick)
            task = asyncio.ensure_future(connector.run())
            await asyncio.sleep(seconds)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

        self.run_async(scenario())
        return connector

    def test_eof_backoff(self) -> None:
        # Accept and close at once, as the emulator does while no host is there.
        path = os.path.join(self.make_tempdir(), "chan.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(16)
        self.addCleanup(server.close)

        def hang_up() -> None:
            conn, _ = server.accept()
            conn.close()

        start = time.monotonic()
        connector = self.run_connector(path, 1.2, on_tick=hang_up, server=server)
        self.assertLess(time.monotonic() - start, 3)
        # 0.1 + 0.2 + 0.4 (+jitter) fit in 1.2 s, 0.8 more does not.
        self.assertGreaterEqual(connector.opens, 3)
        self.assertLessEqual(connector.opens, 4)
        self.assertGreaterEqual(connector.backoff, 0.8)

    def test_backoff_capped(self) -> None:
        connector = transport.Connector(lambda: None, lambda ch: None, lambda d: None, lambda r: None)
        for _ in range(20):
            connector.backoff = min(transport.BACKOFF_MAX_S, connector.backoff * 2)
        self.assertEqual(transport.BACKOFF_MAX_S, connector.backoff)
        connector.mark_good()
        self.assertEqual(transport.BACKOFF_MIN_S, connector.backoff)

    def test_refused_and_missing_back_off(self) -> None:
        tmp = self.make_tempdir()
        dead = os.path.join(tmp, "dead.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(dead)
        sock.close()  # The file stays, nobody listens: ECONNREFUSED.
        with self.assertLogs("ha_guest.guest.transport", "WARNING") as logs:
            connector = self.run_connector(dead, 0.8)
        self.assertEqual(0, connector.opens)
        self.assertEqual(1, len(logs.records), "a repeated failure is logged once")
        connector = self.run_connector(os.path.join(tmp, "missing.sock"), 0.5)
        self.assertEqual(0, connector.opens)
        self.assertGreaterEqual(connector.backoff, 0.4)
