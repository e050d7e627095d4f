"""Argument checks of ha-guest-channel-emulator and instance socket naming."""

from __future__ import annotations

import contextlib
import io

import testtools

from ha_guest.emulator import ChannelEmulator, MultiChannelEmulator
from ha_guest.emulator.cli import main


class TestArguments(testtools.TestCase):
    """Bad command lines exit with status 2 before anything is bound."""

    def assert_rejected(self, *argv: str) -> str:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            exc = self.assertRaises(SystemExit, main, list(argv))
        self.assertEqual(2, exc.code)
        return err.getvalue()

    def test_nothing(self) -> None:
        self.assertIn('--instance', self.assert_rejected())

    def test_half_a_pair(self) -> None:
        self.assertIn('go together', self.assert_rejected('--host-socket', '/tmp/h.sock'))

    def test_both_modes(self) -> None:
        self.assertIn('either', self.assert_rejected('--host-socket', 'h', '--guest-socket', 'g',
                                                     '--host-dir', 'd'))

    def test_dirs_without_instance(self) -> None:
        self.assertIn('--instance', self.assert_rejected('--host-dir', 'a', '--guest-dir', 'b'))

    def test_queue_limit(self) -> None:
        self.assertIn('positive', self.assert_rejected('--host-socket', 'h', '--guest-socket', 'g',
                                                       '--queue-limit', '0'))


class TestSocketNames(testtools.TestCase):
    """Socket files are named <instance>.sock inside their folder, nothing else."""

    def test_paths(self) -> None:
        channels = MultiChannelEmulator('/run/host', '/run/guest')
        uuid = '0b2f6a0e-5d37-4f0c-9a51-0f4d8b1f2c3a'
        self.assertEqual('/run/host/%s.sock' % uuid, channels.host_socket_path(uuid))
        self.assertEqual('/run/guest/%s.sock' % uuid, channels.guest_socket_path(uuid))

    def test_rejected_names(self) -> None:
        channels = MultiChannelEmulator('/run/host', '/run/guest')
        for name in ('', '.hidden', '../x', 'a/b', 'x' * 200):
            self.assertRaises(ValueError, channels.host_socket_path, name)

    def test_path_too_long_for_a_socket(self) -> None:
        self.assertRaises(ValueError, ChannelEmulator, '/tmp/' + 'x' * 120, '/tmp/g.sock')
