"""Functional tests of the hypervisor channel emulator over real UNIX sockets."""

from __future__ import annotations

import asyncio
import os
import pathlib
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from collections.abc import Callable

import fixtures
import testtools

from ha_guest.emulator import ChannelEmulator, ChannelStats, EmulatorThread

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT = 5.0  # any single wait; a healthy run needs milliseconds
QUIET = 0.3  # how long "nothing arrives" is watched
LIMIT = 65536


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes or fail on EOF."""
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            raise AssertionError('EOF after %d of %d bytes' % (len(data), size))
        data += chunk
    return bytes(data)


def assert_silent(sock: socket.socket) -> None:
    """Fail if anything (data or EOF) arrives within QUIET seconds."""
    readable, _, _ = select.select([sock], [], [], QUIET)
    if readable:
        raise AssertionError('expected silence, got %r' % (sock.recv(100),))


class EmulatorTestCase(testtools.TestCase):
    """One EmulatorThread with one instance channel per test."""

    queue_limit = LIMIT

    def setUp(self) -> None:
        super().setUp()
        # A hard bound on every test, on top of the socket timeouts.
        self.useFixture(fixtures.Timeout(60, gentle=True))
        tmp = self.useFixture(fixtures.TempDir()).path
        self.host_dir = os.path.join(tmp, 'host')
        self.guest_dir = os.path.join(tmp, 'guest')
        self.emu = EmulatorThread(self.host_dir, self.guest_dir, queue_limit=self.queue_limit, timeout=TIMEOUT)
        self.emu.start()
        self.addCleanup(self.emu.stop)
        self.instance = str(uuid.uuid4())
        self.host_path, self.guest_path = self.emu.add(self.instance)

    def stats(self) -> ChannelStats:
        return self.emu.stats(self.instance)

    def wait_until(self, predicate: Callable[[ChannelStats], bool], what: str) -> ChannelStats:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            stats = self.stats()
            if predicate(stats):
                return stats
            time.sleep(0.005)
        self.fail('timed out waiting for %s: %s' % (what, self.stats()))

    def connect(self, path: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.settimeout(TIMEOUT)
        sock.connect(path)
        return sock

    def connect_host(self) -> socket.socket:
        count = self.stats().host_connections
        sock = self.connect(self.host_path)
        self.wait_until(lambda s: s.host_connections > count and s.host_connected, 'host connection')
        return sock

    def connect_guest(self, *, half_closed: bool = False) -> socket.socket:
        count = self.stats().guest_connections
        sock = self.connect(self.guest_path)
        stats = self.wait_until(lambda s: s.guest_connections > count and s.guest_connected, 'guest connection')
        self.assertEqual(half_closed, stats.guest_half_closed)
        return sock

    def assert_eof(self, sock: socket.socket) -> None:
        readable, _, _ = select.select([sock], [], [], TIMEOUT)
        self.assertTrue(readable, 'no EOF within %ss' % TIMEOUT)
        self.assertEqual(b'', sock.recv(100))


class TestRelay(EmulatorTestCase):
    """Bytes flow both ways, and wait for the side that is missing."""

    def test_host_to_guest(self) -> None:
        host = self.connect_host()
        guest = self.connect_guest()
        host.sendall(b'{"challenge": 1}\n')
        self.assertEqual(b'{"challenge": 1}\n', recv_exactly(guest, 17))
        self.assertEqual(17, self.stats().host_to_guest_bytes)

    def test_guest_to_host(self) -> None:
        host = self.connect_host()
        guest = self.connect_guest()
        guest.sendall(b'{"init": 1}\n')
        self.assertEqual(b'{"init": 1}\n', recv_exactly(host, 12))
        self.assertEqual(12, self.stats().guest_to_host_bytes)

    def test_host_bytes_before_guest_arrive_in_one_burst(self) -> None:
        host = self.connect_host()
        frames = [b'frame %d\n' % i for i in range(5)]
        for frame in frames:
            host.sendall(frame)
        total = sum(map(len, frames))
        self.wait_until(lambda s: s.queued_to_guest == total, 'host bytes queued')
        guest = self.connect_guest()
        self.assertEqual(b''.join(frames), recv_exactly(guest, total))
        self.assertEqual(0, self.stats().queued_to_guest)

    def test_guest_bytes_without_host_arrive_on_next_host_connection(self) -> None:
        guest = self.connect_guest(half_closed=True)
        guest.sendall(b'written while no host\n')
        self.wait_until(lambda s: s.queued_to_host == 22, 'guest bytes queued')
        host = self.connect_host()
        self.assertEqual(b'written while no host\n', recv_exactly(host, 22))

    def test_guest_reads_eof_at_once_without_host_and_can_write(self) -> None:
        guest = self.connect_guest(half_closed=True)
        started = time.monotonic()
        self.assert_eof(guest)
        self.assertLess(time.monotonic() - started, 1.0)
        # The EOF stays: a reader that does not back off would spin, never block.
        self.assertEqual(b'', guest.recv(100))
        guest.sendall(b'still accepted\n')
        self.wait_until(lambda s: s.queued_to_host == 15, 'write accepted')

    def test_host_disconnect_half_closes_guest(self) -> None:
        host = self.connect_host()
        guest = self.connect_guest()
        host.sendall(b'last words\n')
        host.close()
        # Bytes sent before the host left are read first, then EOF.
        self.assertEqual(b'last words\n', recv_exactly(guest, 11))
        self.assert_eof(guest)
        self.wait_until(lambda s: not s.host_connected and s.guest_half_closed, 'host gone')
        guest.sendall(b'after host left\n')
        host = self.connect_host()
        self.assertEqual(b'after host left\n', recv_exactly(host, 16))

    def test_guest_reconnects_full_duplex_once_host_is_back(self) -> None:
        guest = self.connect_guest(half_closed=True)
        self.assert_eof(guest)
        host = self.connect_host()
        guest.close()
        guest = self.connect_guest()
        host.sendall(b'ping\n')
        self.assertEqual(b'ping\n', recv_exactly(guest, 5))

    def test_host_eof_drops_host(self) -> None:
        host = self.connect_host()
        host.shutdown(socket.SHUT_WR)
        # QEMU treats EOF from its client as a disconnect.
        self.assert_eof(host)
        self.wait_until(lambda s: not s.host_connected, 'host dropped')


class TestOneClientPerSide(EmulatorTestCase):
    """One host client and one guest connection at a time."""

    def test_second_host_client_waits_until_first_leaves(self) -> None:
        host1 = self.connect_host()
        host2 = self.connect(self.host_path)  # sits in the listen backlog
        host2.sendall(b'from host2\n')
        guest = self.connect_guest()
        guest.sendall(b'to host1\n')
        self.assertEqual(b'to host1\n', recv_exactly(host1, 9))
        assert_silent(host2)
        assert_silent(guest)
        self.assertEqual(1, self.stats().host_connections)
        host1.close()
        self.assert_eof(guest)
        self.wait_until(lambda s: s.host_connections == 2 and s.host_connected, 'host2 accepted')
        guest.close()
        guest = self.connect_guest()
        self.assertEqual(b'from host2\n', recv_exactly(guest, 11))
        guest.sendall(b'to host2\n')
        self.assertEqual(b'to host2\n', recv_exactly(host2, 9))

    def test_second_guest_connection_refused(self) -> None:
        host = self.connect_host()
        guest1 = self.connect_guest()
        guest2 = self.connect(self.guest_path)
        self.assert_eof(guest2)
        self.wait_until(lambda s: s.guests_refused == 1, 'refusal')
        guest1.sendall(b'still here\n')
        self.assertEqual(b'still here\n', recv_exactly(host, 11))

    def test_guest_close_and_immediate_reopen_is_admitted(self) -> None:
        host = self.connect_host()
        for i in range(20):
            guest = self.connect(self.guest_path)
            guest.sendall(b'%d\n' % i)
            self.assertEqual(b'%d\n' % i, recv_exactly(host, len(b'%d\n' % i)))
            guest.close()
        self.assertEqual(0, self.stats().guests_refused)


class TestBackpressure(EmulatorTestCase):
    """A full queue stops reading; nothing is dropped."""

    payload = os.urandom(1 << 20)

    def send_in_thread(self, sock: socket.socket) -> threading.Thread:
        sock.settimeout(30)
        thread = threading.Thread(target=sock.sendall, args=(self.payload,), daemon=True)
        thread.start()
        self.addCleanup(thread.join, TIMEOUT)
        return thread

    def test_host_to_guest_beyond_limit(self) -> None:
        host = self.connect_host()
        writer = self.send_in_thread(host)
        self.wait_until(lambda s: s.queued_to_guest == LIMIT, 'full queue')
        time.sleep(0.1)
        self.assertTrue(writer.is_alive(), 'the host writer should be blocked')
        self.assertEqual(LIMIT, self.stats().queued_to_guest)
        guest = self.connect_guest()
        self.assertEqual(self.payload, recv_exactly(guest, len(self.payload)))
        writer.join(TIMEOUT)
        self.assertFalse(writer.is_alive())
        self.assertLessEqual(self.stats().peak_queued_to_guest, LIMIT)

    def test_guest_to_host_beyond_limit(self) -> None:
        guest = self.connect_guest(half_closed=True)
        writer = self.send_in_thread(guest)
        self.wait_until(lambda s: s.queued_to_host == LIMIT, 'full queue')
        time.sleep(0.1)
        self.assertTrue(writer.is_alive(), 'the guest writer should be blocked')
        host = self.connect_host()
        self.assertEqual(self.payload, recv_exactly(host, len(self.payload)))
        writer.join(TIMEOUT)
        self.assertFalse(writer.is_alive())
        self.assertLessEqual(self.stats().peak_queued_to_host, LIMIT)

    def test_slow_guest_gets_everything_in_order(self) -> None:
        host = self.connect_host()
        guest = self.connect_guest()
        writer = self.send_in_thread(host)
        received = bytearray()
        while len(received) < len(self.payload):
            chunk = guest.recv(4096)
            self.assertTrue(chunk, 'unexpected EOF')
            received += chunk
        self.assertEqual(self.payload, bytes(received))
        writer.join(TIMEOUT)


class TestSocketFiles(EmulatorTestCase):
    """Socket files appear on add and disappear on remove and stop."""

    def test_add_and_remove(self) -> None:
        other = str(uuid.uuid4())
        host_path, guest_path = self.emu.add(other)
        self.assertEqual(os.path.join(self.host_dir, other + '.sock'), host_path)
        self.assertEqual(os.path.join(self.guest_dir, other + '.sock'), guest_path)
        self.assertEqual(sorted([self.instance, other]), self.emu.instances())
        self.assertTrue(os.path.exists(host_path) and os.path.exists(guest_path))
        self.assertRaises(ValueError, self.emu.add, other)
        self.emu.remove(other)
        self.assertFalse(os.path.exists(host_path) or os.path.exists(guest_path))
        self.assertRaises(KeyError, self.emu.remove, other)
        self.assertEqual([self.instance], self.emu.instances())

    def test_directory_holds_only_finished_sockets(self) -> None:
        self.assertEqual([self.instance + '.sock'], os.listdir(self.host_dir))

    def test_remove_drops_connections(self) -> None:
        host = self.connect_host()
        guest = self.connect_guest()
        self.emu.remove(self.instance)
        self.assert_eof(host)
        self.assert_eof(guest)

    def test_stale_socket_is_replaced(self) -> None:
        other = str(uuid.uuid4())
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(os.path.join(self.host_dir, other + '.sock'))
        stale.close()
        host_path, _ = self.emu.add(other)
        self.connect(host_path).close()

    def test_non_socket_file_is_kept(self) -> None:
        path = os.path.join(self.host_dir, 'not-a-socket.sock')
        with open(path, 'w') as f:
            f.write('keep me')
        self.assertRaises(FileExistsError, self.emu.add, 'not-a-socket')
        with open(path) as f:
            self.assertEqual('keep me', f.read())
        # The guest socket bound before the failure is gone again.
        self.assertFalse(os.path.exists(os.path.join(self.guest_dir, 'not-a-socket.sock')))

    def test_bad_instance_name(self) -> None:
        self.assertRaises(ValueError, self.emu.add, '../escape')

    def test_stop_removes_socket_files(self) -> None:
        self.emu.stop()
        self.assertEqual([], os.listdir(self.host_dir))
        self.assertEqual([], os.listdir(self.guest_dir))


class TestChannelEmulatorAsync(unittest.IsolatedAsyncioTestCase):
    """The asyncio API used directly, with asyncio streams as host and guest."""

    async def asyncSetUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.channel = ChannelEmulator(os.path.join(tmp.name, 'h.sock'), os.path.join(tmp.name, 'g.sock'))
        await asyncio.wait_for(self.channel.start(), TIMEOUT)
        self.addAsyncCleanup(self.channel.stop)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        async def poll() -> None:
            while not predicate():
                await asyncio.sleep(0.005)
        await asyncio.wait_for(poll(), TIMEOUT)

    async def test_relay_and_counters(self) -> None:
        host_r, host_w = await asyncio.wait_for(asyncio.open_unix_connection(self.channel.host_socket_path), TIMEOUT)
        await self.wait_until(lambda: self.channel.host_connected)
        guest_r, guest_w = await asyncio.wait_for(asyncio.open_unix_connection(self.channel.guest_socket_path),
                                                  TIMEOUT)
        await self.wait_until(lambda: self.channel.guest_connected)
        self.assertFalse(self.channel.guest_half_closed)
        host_w.write(b'challenge\n')
        self.assertEqual(b'challenge\n', await asyncio.wait_for(guest_r.readline(), TIMEOUT))
        guest_w.write(b'response\n')
        self.assertEqual(b'response\n', await asyncio.wait_for(host_r.readline(), TIMEOUT))
        stats = self.channel.stats()
        self.assertEqual((10, 9, 1, 1), (stats.host_to_guest_bytes, stats.guest_to_host_bytes,
                                         stats.host_connections, stats.guest_connections))
        await self.channel.stop()
        self.assertEqual(b'', await asyncio.wait_for(host_r.read(), TIMEOUT))
        self.assertFalse(os.path.exists(self.channel.host_socket_path))
        self.assertFalse(os.path.exists(self.channel.guest_socket_path))
        for writer in (host_w, guest_w):
            writer.close()


class TestCommandLine(testtools.TestCase):
    """ha-guest-channel-emulator as a process."""

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                       os.environ.get('PYTHONPATH')])))
        proc = subprocess.Popen([sys.executable, '-m', 'ha_guest.emulator.cli', *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def kill() -> None:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=TIMEOUT)
        self.addCleanup(kill)
        return proc

    def wait_for_file(self, proc: subprocess.Popen[bytes], path: str) -> None:
        deadline = time.monotonic() + 15
        while not os.path.exists(path):
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ''
                self.fail('emulator exited with %s: %s' % (proc.returncode, err))
            if time.monotonic() > deadline:
                self.fail('%s did not appear' % path)
            time.sleep(0.02)

    def connect(self, path: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.settimeout(TIMEOUT)
        sock.connect(path)
        return sock

    def connect_duplex_guest(self, path: str) -> socket.socket:
        """Connect the way the guest agent does: on EOF (no host yet) close and retry."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            guest = self.connect(path)
            if not select.select([guest], [], [], QUIET)[0]:
                return guest
            self.assertEqual(b'', guest.recv(1))
            guest.close()
        self.fail('guest never got a full-duplex connection')

    def relay(self, host_path: str, guest_path: str) -> None:
        host = self.connect(host_path)
        guest = self.connect_duplex_guest(guest_path)
        guest.sendall(b'hello host\n')
        self.assertEqual(b'hello host\n', recv_exactly(host, 11))
        host.sendall(b'hello guest\n')
        self.assertEqual(b'hello guest\n', recv_exactly(guest, 12))

    def stop(self, proc: subprocess.Popen[bytes], signum: int) -> str:
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=TIMEOUT)
        self.assertEqual(0, proc.returncode, err.decode())
        return err.decode()

    def test_single_channel(self) -> None:
        host_path = os.path.join(self.tmp, 'h.sock')
        guest_path = os.path.join(self.tmp, 'g.sock')
        proc = self.start('--host-socket', host_path, '--guest-socket', guest_path)
        self.wait_for_file(proc, host_path)
        self.relay(host_path, guest_path)
        log = self.stop(proc, signal.SIGTERM)
        self.assertIn('host connected', log)
        self.assertFalse(os.path.exists(host_path) or os.path.exists(guest_path))

    def test_many_instances(self) -> None:
        instances = [str(uuid.uuid4()) for _ in range(2)]
        host_dir = os.path.join(self.tmp, 'host')
        guest_dir = os.path.join(self.tmp, 'guest')
        args = ['--host-dir', host_dir, '--guest-dir', guest_dir]
        for instance in instances:
            args += ['--instance', instance]
        proc = self.start(*args)
        for instance in instances:
            self.wait_for_file(proc, os.path.join(host_dir, instance + '.sock'))
        for instance in instances:
            self.relay(os.path.join(host_dir, instance + '.sock'), os.path.join(guest_dir, instance + '.sock'))
        self.stop(proc, signal.SIGINT)
        self.assertEqual([], os.listdir(host_dir))
        self.assertEqual([], os.listdir(guest_dir))

    def test_bad_arguments(self) -> None:
        proc = self.start('--host-socket', os.path.join(self.tmp, 'h.sock'))
        _, err = proc.communicate(timeout=TIMEOUT)
        self.assertEqual(2, proc.returncode)
        self.assertIn(b'--guest-socket', err)
