"""The pure channel builder: when an instance gets the channel, and what it looks like."""

from __future__ import annotations

import subprocess
import sys

import testtools

from ha_guest.nova import channel
from ha_guest.protocol import constants


class TestChannelSpec(testtools.TestCase):
    """channel_spec() decides and describes."""

    def test_none_without_features(self) -> None:
        self.assertIsNone(channel.channel_spec("instance-00000001", {}))
        self.assertIsNone(channel.channel_spec("instance-00000001", {"ha_guest:heartbeat": "false"}))

    def test_heartbeat_channel(self) -> None:
        spec = channel.channel_spec("instance-0000000a", {"ha_guest:heartbeat": "true"})
        self.assertEqual(
            channel.ChannelSpec(
                target_name="org.openstack.ha_guest.0",
                source_path="/var/lib/libvirt/qemu/org.openstack.ha_guest.0.instance-0000000a.sock",
                type="unix",
            ),
            spec,
        )

    def test_uses_protocol_constants(self) -> None:
        spec = channel.channel_spec("inst", {"ha_guest:server_group_messaging": "yes"})
        assert spec is not None
        self.assertEqual(constants.CHANNEL_NAME, spec.target_name)
        self.assertEqual(constants.host_socket_path("inst"), spec.source_path)

    def test_one_channel_for_both_features(self) -> None:
        both = channel.channel_spec("i", {"ha_guest:heartbeat": "1", "ha_guest:server_group_messaging": "1"})
        only = channel.channel_spec("i", {"ha_guest:heartbeat": "1"})
        self.assertEqual(only, both)

    def test_image_property(self) -> None:
        self.assertIsNotNone(channel.channel_spec("i", {}, {"ha_guest_heartbeat": "yes"}))
        self.assertIsNone(channel.channel_spec("i", {"ha_guest:heartbeat": "no"}, {"ha_guest_heartbeat": "yes"}))

    def test_invalid_value(self) -> None:
        from ha_guest.nova import specs

        self.assertRaises(specs.InvalidSpec, channel.channel_spec, "i", {"ha_guest:heartbeat": "sometimes"})

    def test_no_name_checks_without_features(self) -> None:
        # An instance that asked for nothing must never fail because of us.
        self.assertIsNone(channel.channel_spec("a/b", {}))


class TestSocketPath(testtools.TestCase):
    """The instance name becomes part of a file name under libvirt's folder."""

    def test_pattern(self) -> None:
        self.assertEqual(
            "/var/lib/libvirt/qemu/org.openstack.ha_guest.0.instance-00000001.sock",
            channel.socket_path("instance-00000001"),
        )

    def test_uuid_name_fits(self) -> None:
        channel.socket_path("6f1f6c4e-29a4-4a6e-8b5e-1c3d9a0f6d2b")

    def test_rejects_path_tricks(self) -> None:
        for name in ("", "a/b", "../x", ".", "..", "a\0b"):
            self.assertRaises(channel.InvalidInstanceName, channel.socket_path, name)

    def test_rejects_too_long(self) -> None:
        room = channel.MAX_SOCKET_PATH_BYTES - len(constants.host_socket_path(""))
        channel.socket_path("x" * room)
        exc = self.assertRaises(channel.InvalidInstanceName, channel.socket_path, "x" * (room + 1))
        self.assertIn("instance_name_template", str(exc))


class TestPurity(testtools.TestCase):
    """specs and channel must import without Nova (nova-api and tests rely on it)."""

    def test_no_nova_import(self) -> None:
        code = (
            "import sys; import ha_guest.nova, ha_guest.nova.specs, ha_guest.nova.channel; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('nova', 'oslo_utils', 'oslo_config')); "
            "print(bad); sys.exit(1 if bad else 0)"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
