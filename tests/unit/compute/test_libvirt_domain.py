"""What the libvirt driver makes of a domain's state and XML (pure; no libvirt-python needed)."""

from __future__ import annotations

import logging

import fixtures
import testtools

from ha_guest.compute.discovery import base
from ha_guest.compute.discovery.libvirt_domain import (
    MAX_XML_CHARS,
    DomainState,
    DomainStatus,
    PausedReason,
    ShutoffReason,
    Watch,
    channel_features,
    channel_socket,
    domain_channel,
    domain_status,
    event_name,
    parse_features,
)
from ha_guest.nova import features_xml

CHANNEL = "org.openstack.ha_guest.0"


NS = "http://openstack.org/xmlns/libvirt/ha_guest/1.0"
NOVA_META = ("<nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>"
             "<nova:name>vm</nova:name></nova:instance>")


def domain_xml(*channels: str, metadata: str = "") -> str:
    return ("<domain type='kvm'><name>instance-00000001</name>%s<devices>%s</devices></domain>"
            % ("<metadata>%s</metadata>" % metadata if metadata else "", "".join(channels)))


def features(prefix: str = "ha_guest", uri: str = NS, **attributes: str) -> str:
    """Our metadata element, as Nova's lxml writes it or libvirt's dumpxml gives it back."""
    values = "".join(" %s='%s'" % item for item in attributes.items())
    return "<%s:features xmlns:%s='%s'%s/>" % (prefix, prefix, uri, values)


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


class TestFeatures(testtools.TestCase):
    """What the instance may use, from the <ha_guest:features> element in <metadata>."""

    def test_values(self) -> None:
        for heartbeat in (True, False):
            for sgm in (True, False):
                xml = domain_xml(channel(), metadata=NOVA_META + features(
                    **features_xml.attributes(heartbeat, sgm)))
                self.assertEqual(base.Features(heartbeat, sgm), channel_features(xml))

    def test_exact_text_the_driver_writes(self) -> None:
        # What Nova's lxml serialises and libvirt's dumpxml gives back (double quotes, one line).
        xml = ('<domain type="kvm"><name>i</name><metadata>%s<ha_guest:features '
               'xmlns:ha_guest="http://openstack.org/xmlns/libvirt/ha_guest/1.0" heartbeat="false" '
               'server_group_messaging="true"/></metadata></domain>' % NOVA_META)
        self.assertEqual(base.Features(heartbeat=False, server_group_messaging=True), parse_features(xml))
        self.assertEqual(NS, features_xml.NAMESPACE_URI)

    def test_no_metadata_is_legacy(self) -> None:
        for xml in (domain_xml(channel()),
                    domain_xml(channel(), metadata=NOVA_META),
                    # The name alone is not enough: libvirt keys metadata by namespace URI.
                    domain_xml(metadata=features(uri="http://example.com/other", heartbeat="false")),
                    domain_xml(metadata="<features heartbeat='false'/>"),
                    # Our element outside <metadata> is not ours.
                    domain_xml(features(heartbeat="false"))):
            self.assertEqual(base.LEGACY_FEATURES, parse_features(xml), xml)
            self.assertEqual(base.Features(heartbeat=True, server_group_messaging=False), channel_features(xml))

    def test_prefix_does_not_matter(self) -> None:
        xml = domain_xml(metadata=features(prefix="hg", heartbeat="false", server_group_messaging="true"))
        self.assertEqual(base.Features(False, True), parse_features(xml))

    def test_xsd_boolean_words_and_missing_attributes(self) -> None:
        cases = {(("heartbeat", "0"), ("server_group_messaging", "1")): base.Features(False, True),
                 (("heartbeat", " true "),): base.Features(True, False),
                 (("server_group_messaging", "true"),): base.Features(True, True),
                 (("heartbeat", "false"),): base.Features(False, False),
                 (): base.LEGACY_FEATURES}
        for attributes, expected in cases.items():
            self.assertEqual(expected, parse_features(domain_xml(metadata=features(**dict(attributes)))), attributes)

    def test_first_element_counts(self) -> None:
        xml = domain_xml(metadata=features(heartbeat="false", server_group_messaging="true")
                         + features(heartbeat="true", server_group_messaging="false"))
        self.assertEqual(base.Features(False, True), parse_features(xml))

    def test_bad_values_are_legacy_and_logged(self) -> None:
        log = self.useFixture(fixtures.FakeLogger(level=logging.WARNING))
        for value in ("yes", "True", "", "on", "2"):
            xml = domain_xml(channel(), metadata=features(heartbeat="false", server_group_messaging=value))
            self.assertRaises(ValueError, parse_features, xml)
            self.assertEqual(base.LEGACY_FEATURES, channel_features(xml, "uuid-1"), value)
        self.assertEqual(5, log.output.count("uuid-1: unusable ha_guest features metadata"), log.output)

    def test_unparsable_xml_is_legacy(self) -> None:
        self.useFixture(fixtures.FakeLogger(level=logging.WARNING))
        self.assertEqual(base.LEGACY_FEATURES, channel_features("<domain><metadata>"))
        self.assertEqual(base.LEGACY_FEATURES, channel_features(" " * (MAX_XML_CHARS + 1)))


class TestDomainChannel(testtools.TestCase):
    """The socket and the features from one parse."""

    def test_both(self) -> None:
        xml = domain_xml(channel(path="/ours.sock"),
                         metadata=features(heartbeat="false", server_group_messaging="true"))
        self.assertEqual(("/ours.sock", base.Features(False, True)), domain_channel(xml, CHANNEL))

    def test_no_channel_no_features(self) -> None:
        xml = domain_xml(metadata=features(heartbeat="false", server_group_messaging="true"))
        self.assertEqual((None, base.LEGACY_FEATURES), domain_channel(xml, CHANNEL))

    def test_bad_features_keep_the_channel(self) -> None:
        self.useFixture(fixtures.FakeLogger(level=logging.WARNING))
        xml = domain_xml(channel(path="/ours.sock"), metadata=features(heartbeat="maybe"))
        self.assertEqual(("/ours.sock", base.LEGACY_FEATURES), domain_channel(xml, CHANNEL))

    def test_bad_xml_raises(self) -> None:
        self.assertRaises(SyntaxError, domain_channel, "<domain><devices>", CHANNEL)
        self.assertRaises(ValueError, domain_channel, " " * (MAX_XML_CHARS + 1), CHANNEL)
