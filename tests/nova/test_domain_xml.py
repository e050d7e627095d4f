"""The domain XML that Nova generates through our driver, with Nova's fake libvirt."""

from __future__ import annotations

import re

from lxml import etree
from nova import exception
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import driver as libvirt_driver

from ha_guest.compute.discovery import base as discovery_base
from ha_guest.compute.discovery import libvirt_domain
from ha_guest.nova import driver as ha_driver
from ha_guest.nova import specs
from ha_guest.protocol import constants
from tests.nova import base


def _without_creation_time(xml: str) -> str:
    """Drop the one element that differs between two otherwise equal builds."""
    return re.sub(r"<nova:creationTime>[^<]*</nova:creationTime>", "", xml)


class TestDomainXML(base.LibvirtHarnessTestCase):
    """Our channel is there exactly once when asked for, and absent otherwise."""

    def _xml(self, extra_specs=None, image_properties=None) -> str:
        instance, image_meta = self.make_instance(extra_specs, image_properties)
        return self.guest_xml(self.make_driver(), instance, image_meta)

    def assert_ha_channel(self, xml: str, instance_name: str = "instance-00000001") -> None:
        found = base.channels(xml, base.HA_CHANNEL)
        self.assertEqual(1, len(found), xml)
        chan = found[0]
        self.assertEqual("unix", chan.get("type"))
        source = chan.find("source")
        self.assertEqual("bind", source.get("mode"))
        self.assertEqual(
            "/var/lib/libvirt/qemu/org.openstack.ha_guest.0.%s.sock" % instance_name,
            source.get("path"),
        )
        self.assertEqual(constants.host_socket_path(instance_name), source.get("path"))
        self.assertEqual("virtio", chan.find("target").get("type"))

    def test_heartbeat(self) -> None:
        self.assert_ha_channel(self._xml({"ha_guest:heartbeat": "true"}))

    def test_server_group_messaging(self) -> None:
        self.assert_ha_channel(self._xml({"ha_guest:server_group_messaging": "yes"}))

    def test_both_features_one_channel(self) -> None:
        self.assert_ha_channel(self._xml({"ha_guest:heartbeat": "True", "ha_guest:server_group_messaging": "1"}))

    def test_without_extra_specs(self) -> None:
        xml = self._xml()
        self.assertEqual([], base.channels(xml, base.HA_CHANNEL))
        self.assertNotIn(base.HA_CHANNEL, xml)

    def test_explicitly_off(self) -> None:
        xml = self._xml({"ha_guest:heartbeat": "false", "ha_guest:server_group_messaging": "no"})
        self.assertNotIn(base.HA_CHANNEL, xml)

    def test_recovery_alone_adds_nothing(self) -> None:
        self.assertNotIn(base.HA_CHANNEL, self._xml({"ha_guest:recovery": "reboot"}))

    def test_image_property(self) -> None:
        self.assert_ha_channel(self._xml(image_properties={"ha_guest_heartbeat": "yes"}))

    def test_flavor_overrides_image(self) -> None:
        xml = self._xml({"ha_guest:heartbeat": "false"}, {"ha_guest_heartbeat": "yes"})
        self.assertNotIn(base.HA_CHANNEL, xml)

    def test_instance_name_in_socket_path(self) -> None:
        instance, image_meta = self.make_instance({"ha_guest:heartbeat": "true"}, instance_id=0x2A)
        self.assert_ha_channel(self.guest_xml(self.make_driver(), instance, image_meta), "instance-0000002a")

    def test_qemu_virt_type(self) -> None:
        self.flags(virt_type="qemu", group="libvirt")
        self.assert_ha_channel(self._xml({"ha_guest:heartbeat": "true"}))


class TestFeaturesMetadata(base.LibvirtHarnessTestCase):
    """<metadata> says what the flavor (or image) enabled, in our namespace, once."""

    def _xml(self, extra_specs=None, image_properties=None) -> str:
        instance, image_meta = self.make_instance(extra_specs, image_properties)
        return self.guest_xml(self.make_driver(), instance, image_meta)

    def assert_features(self, xml: str, heartbeat: str, sgm: str) -> None:
        found = base.features_elements(xml)
        self.assertEqual(1, len(found), xml)
        self.assertEqual({"heartbeat": heartbeat, "server_group_messaging": sgm}, dict(found[0].attrib))
        self.assertEqual("ha_guest", found[0].prefix)
        # The exact text the design names, and what the compute agent's libvirt discovery reads from it.
        self.assertIn('<ha_guest:features xmlns:ha_guest="http://openstack.org/xmlns/libvirt/ha_guest/1.0" '
                      'heartbeat="%s" server_group_messaging="%s"/>' % (heartbeat, sgm), xml)
        expected = discovery_base.Features(heartbeat == "true", sgm == "true")
        self.assertEqual((constants.host_socket_path("instance-00000001"), expected),
                         libvirt_domain.domain_channel(xml, base.HA_CHANNEL))

    def test_heartbeat_only(self) -> None:
        self.assert_features(self._xml({"ha_guest:heartbeat": "true"}), "true", "false")

    def test_sgm_only(self) -> None:
        self.assert_features(self._xml({"ha_guest:server_group_messaging": "yes"}), "false", "true")

    def test_both(self) -> None:
        self.assert_features(self._xml({"ha_guest:heartbeat": "on", "ha_guest:server_group_messaging": "1"}),
                             "true", "true")

    def test_after_novas_own_metadata(self) -> None:
        xml = self._xml({"ha_guest:heartbeat": "true"})
        root = etree.fromstring(xml.encode("utf-8"))
        children = list(root.find("metadata"))
        self.assertEqual(["{http://openstack.org/xmlns/libvirt/nova/1.1}instance", "{%s}features" % base.FEATURES_NS],
                         [child.tag for child in children])
        self.assertEqual(1, len(root.findall("metadata")))

    def test_image_properties(self) -> None:
        self.assert_features(self._xml(image_properties={"ha_guest_server_group_messaging": "true"}),
                             "false", "true")
        self.assert_features(self._xml(image_properties={"ha_guest_heartbeat": "yes",
                                                         "ha_guest_server_group_messaging": "yes"}), "true", "true")

    def test_flavor_wins_over_image_per_feature(self) -> None:
        xml = self._xml({"ha_guest:server_group_messaging": "false"},
                        {"ha_guest_heartbeat": "true", "ha_guest_server_group_messaging": "true"})
        self.assert_features(xml, "true", "false")
        xml = self._xml({"ha_guest:heartbeat": "false", "ha_guest:server_group_messaging": "true"},
                        {"ha_guest_heartbeat": "true"})
        self.assert_features(xml, "false", "true")

    def test_none_without_channel(self) -> None:
        for extra_specs in ({}, {"ha_guest:heartbeat": "false"}, {"ha_guest:recovery": "reboot"}):
            xml = self._xml(extra_specs)
            self.assertEqual([], base.features_elements(xml), extra_specs)
            self.assertNotIn(base.FEATURES_NS, xml)

    def test_hook_never_adds_it_twice(self) -> None:
        drvr = self.make_driver()
        instance, image_meta = self.make_instance({"ha_guest:server_group_messaging": "true"})
        guest = vconfig.LibvirtConfigGuest()
        guest.virt_type = "kvm"
        drvr._set_qemu_guest_agent(guest, instance.flavor, instance, image_meta)
        drvr._set_qemu_guest_agent(guest, instance.flavor, instance, image_meta)
        self.assertEqual(1, len([item for item in guest.metadata
                                 if isinstance(item, ha_driver.HAGuestFeaturesMetadata)]))

    def test_added_beside_an_existing_channel(self) -> None:
        # A config that already has our channel (built by someone else) still gets the features.
        existing = vconfig.LibvirtConfigGuestChannel()
        existing.type = "unix"
        existing.target_name = base.HA_CHANNEL
        existing.source_path = "/somewhere/else.sock"
        guest = vconfig.LibvirtConfigGuest()
        guest.virt_type = "kvm"
        guest.add_device(existing)
        instance, image_meta = self.make_instance({"ha_guest:heartbeat": "true"})
        self.make_driver()._set_qemu_guest_agent(guest, instance.flavor, instance, image_meta)
        self.assertEqual([existing], guest.devices)
        self.assertEqual([specs.Features(heartbeat=True, server_group_messaging=False)],
                         [item.features for item in guest.metadata])

    def test_resize_to_another_flavor(self) -> None:
        # Nova regenerates the XML from the new flavor on resize; the features follow it.
        instance, image_meta = self.make_instance({"ha_guest:heartbeat": "true"})
        drvr = self.make_driver()
        self.assert_features(self.guest_xml(drvr, instance, image_meta), "true", "false")
        instance.flavor.extra_specs = {"ha_guest:heartbeat": "true", "ha_guest:server_group_messaging": "true"}
        self.assert_features(self.guest_xml(drvr, instance, image_meta), "true", "true")


class TestBesideQemuGuestAgent(base.LibvirtHarnessTestCase):
    """The QEMU guest agent channel (hw_qemu_guest_agent) keeps working beside ours."""

    def test_both_channels(self) -> None:
        instance, image_meta = self.make_instance({"ha_guest:heartbeat": "true"}, {"hw_qemu_guest_agent": "yes"})
        xml = self.guest_xml(self.make_driver(), instance, image_meta)
        qga = base.channels(xml, base.QGA_CHANNEL)
        ours = base.channels(xml, base.HA_CHANNEL)
        self.assertEqual(1, len(qga), xml)
        self.assertEqual(1, len(ours), xml)
        self.assertEqual(
            "/var/lib/libvirt/qemu/org.qemu.guest_agent.0.instance-00000001.sock", qga[0].find("source").get("path")
        )
        self.assertNotEqual(qga[0].find("source").get("path"), ours[0].find("source").get("path"))

    def test_guest_agent_alone_unchanged(self) -> None:
        # Nova fills in defaults (hw_machine_type) on the objects: give each driver its own.
        instance, image_meta = self.make_instance(image_properties={"hw_qemu_guest_agent": "yes"})
        ours = self.guest_xml(self.make_driver(), instance, image_meta)
        instance, image_meta = self.make_instance(image_properties={"hw_qemu_guest_agent": "yes"})
        upstream = self.guest_xml(libvirt_driver.LibvirtDriver(None, False), instance, image_meta)
        self.assertEqual(1, len(base.channels(ours, base.QGA_CHANNEL)))
        self.assertNotIn(base.HA_CHANNEL, ours)
        # Without our extra specs our driver produces what Nova's own driver does.
        self.assertEqual(_without_creation_time(upstream), _without_creation_time(ours))


class TestHook(base.LibvirtHarnessTestCase):
    """The override of _set_qemu_guest_agent, on a guest config object."""

    def _guest(self, virt_type: str = "kvm") -> vconfig.LibvirtConfigGuest:
        guest = vconfig.LibvirtConfigGuest()
        guest.virt_type = virt_type
        return guest

    def test_never_twice(self) -> None:
        drvr = self.make_driver()
        instance, image_meta = self.make_instance({"ha_guest:heartbeat": "true"})
        guest = self._guest()
        drvr._set_qemu_guest_agent(guest, instance.flavor, instance, image_meta)
        drvr._set_qemu_guest_agent(guest, instance.flavor, instance, image_meta)
        self.assertEqual(1, len(base.channels(guest.to_xml(), base.HA_CHANNEL)))

    def test_keeps_existing_channel(self) -> None:
        existing = vconfig.LibvirtConfigGuestChannel()
        existing.type = "unix"
        existing.target_name = base.HA_CHANNEL
        existing.source_path = "/somewhere/else.sock"
        guest = self._guest()
        guest.add_device(existing)
        instance, image_meta = self.make_instance({"ha_guest:heartbeat": "true"})
        self.make_driver()._set_qemu_guest_agent(guest, instance.flavor, instance, image_meta)
        self.assertEqual([existing], guest.devices)

    def test_other_virt_types_untouched(self) -> None:
        guest = self._guest("lxc")
        instance, image_meta = self.make_instance({"ha_guest:heartbeat": "true"})
        self.make_driver()._set_qemu_guest_agent(guest, instance.flavor, instance, image_meta)
        self.assertEqual([], guest.devices)

    def test_invalid_value_aborts_build(self) -> None:
        # InvalidInput is in the list of errors for which nova-compute aborts a
        # build instead of rescheduling it to another host.
        instance, image_meta = self.make_instance({"ha_guest:heartbeat": "sometimes"})
        exc = self.assertRaises(
            exception.InvalidInput,
            self.make_driver()._set_qemu_guest_agent,
            self._guest(),
            instance.flavor,
            instance,
            image_meta,
        )
        self.assertIn("ha_guest:heartbeat", str(exc))

    def test_invalid_image_value_aborts_build(self) -> None:
        instance, image_meta = self.make_instance(image_properties={"ha_guest_heartbeat": "maybe"})
        self.assertRaises(
            exception.InvalidInput,
            self.make_driver()._set_qemu_guest_agent,
            self._guest(),
            instance.flavor,
            instance,
            image_meta,
        )
