"""What the libvirt driver makes of a domain's state and XML (pure; no libvirt-python needed)."""

from __future__ import annotations

import testtools

from ha_guest.compute.discovery import base
from ha_guest.compute.discovery.libvirt_domain import (
    MAX_XML_CHARS,
    DomainState,
    DomainStatus,
    PausedReason,
    ShutoffReason,
    Watch,
    channel_socket,
    domain_status,
    event_name,
)

CHANNEL = "org.openstack.ha_guest.0"


def domain_xml(*channels: str) -> str:
    return "<domain type='kvm'><name>instance-00000001</name><devices>%s</devices></domain>" % "".join(channels)


def channel(name: str = CHANNEL, path: str = "/var/lib/libvirt/qemu/x.sock", mode: str = "bind",
            chardev: str = "unix", target_type: str = "virtio") -> str:
    return ("<channel type='%s'><source mode='%s' path='%s'/><target type='%s' name='%s'/></channel>"
            % (chardev, mode, path, target_type, name))


class TestDomainStatus(testtools.TestCase):
    """Each (state, reason) libvirt reports maps to a watch decision."""

    def test_running(self) -> None:
        for state in (DomainState.RUNNING, DomainState.BLOCKED, DomainState.NOSTATE, 42):
            self.assertEqual(DomainStatus(Watch.RUNNING), domain_status(state, 1))

    def test_paused_by_someone_is_suspended(self) -> None:
        expected = {
            PausedReason.UNKNOWN: base.PAUSED,
            PausedReason.USER: base.PAUSED,
            PausedReason.MIGRATION: base.MIGRATING,
            PausedReason.POSTCOPY: base.MIGRATING,
            PausedReason.SAVE: base.SUSPENDED,
            PausedReason.SHUTTING_DOWN: base.SHUTTING_DOWN,
            PausedReason.STARTING_UP: "starting",
            PausedReason.SNAPSHOT: "snapshot",
            PausedReason.FROM_SNAPSHOT: "snapshot",
            PausedReason.DUMP: "dumping",
            99: base.PAUSED,  # a reason newer than this code
        }
        for reason, why in expected.items():
            self.assertEqual(DomainStatus(Watch.SUSPENDED, why), domain_status(DomainState.PAUSED, reason))

    def test_paused_because_something_broke_is_a_failure(self) -> None:
        for reason in (PausedReason.IOERROR, PausedReason.WATCHDOG, PausedReason.CRASHED,
                       PausedReason.POSTCOPY_FAILED, PausedReason.API_ERROR):
            self.assertEqual(Watch.FAILED, domain_status(DomainState.PAUSED, reason).watch, reason.name)

    def test_shutting_down_and_pm_suspended_are_suspended(self) -> None:
        self.assertEqual(DomainStatus(Watch.SUSPENDED, base.SHUTTING_DOWN), domain_status(DomainState.SHUTDOWN, 0))
        self.assertEqual(DomainStatus(Watch.SUSPENDED, base.SUSPENDED), domain_status(DomainState.PMSUSPENDED, 0))

    def test_orderly_shutoff_is_gone(self) -> None:
        for reason in (ShutoffReason.UNKNOWN, ShutoffReason.SHUTDOWN, ShutoffReason.DESTROYED,
                       ShutoffReason.MIGRATED, ShutoffReason.SAVED, ShutoffReason.FROM_SNAPSHOT):
            self.assertEqual(Watch.GONE, domain_status(DomainState.SHUTOFF, reason).watch, reason.name)

    def test_abnormal_end_is_a_failure(self) -> None:
        for reason in (ShutoffReason.CRASHED, ShutoffReason.FAILED, ShutoffReason.DAEMON):
            self.assertEqual(Watch.FAILED, domain_status(DomainState.SHUTOFF, reason).watch, reason.name)
        self.assertEqual(DomainStatus(Watch.FAILED, "crashed"), domain_status(DomainState.CRASHED, 1))

    def test_event_name(self) -> None:
        self.assertEqual("STOPPED/5", event_name(5, 5))
        self.assertEqual("77/1", event_name(77, 1))


class TestChannelSocket(testtools.TestCase):
    """The host socket of our channel, found in the domain XML."""

    def test_found(self) -> None:
        xml = domain_xml(channel(name="org.qemu.guest_agent.0", path="/qga.sock"), channel(path="/ours.sock"))
        self.assertEqual("/ours.sock", channel_socket(xml, CHANNEL))

    def test_other_channel_name_option(self) -> None:
        xml = domain_xml(channel(path="/ours.sock"), channel(name="other.0", path="/other.sock"))
        self.assertEqual("/other.sock", channel_socket(xml, "other.0"))

    def test_not_ours(self) -> None:
        for xml in (domain_xml(),
                    "<domain type='kvm'><name>no-devices</name></domain>",
                    domain_xml(channel(name="org.qemu.guest_agent.0")),
                    domain_xml(channel(mode="connect")),
                    domain_xml(channel(chardev="pty")),
                    domain_xml(channel(target_type="guestfwd")),
                    domain_xml("<channel type='unix'><source mode='bind'/><target type='virtio' name='%s'/></channel>"
                               % CHANNEL),
                    domain_xml("<channel type='unix'><target type='virtio' name='%s'/></channel>" % CHANNEL)):
            self.assertIsNone(channel_socket(xml, CHANNEL), xml)

    def test_bad_xml(self) -> None:
        self.assertRaises(SyntaxError, channel_socket, "<domain><devices>", CHANNEL)
        self.assertRaises(ValueError, channel_socket, " " * (MAX_XML_CHARS + 1), CHANNEL)
