"""The domain XML with our channel validates against libvirt's own schema (virt-xml-validate)."""

from __future__ import annotations

import os
import shutil
import subprocess

import fixtures

from tests.nova import base

INSTALL_HINT = "run tools/ensure-libvirt-tools.sh as root (tox -e nova does) to install libvirt-clients"


class TestLibvirtSchema(base.LibvirtHarnessTestCase):
    """virt-xml-validate from Debian's libvirt-clients accepts what Nova generates through us."""

    def validate(self, xml: str) -> None:
        tool = shutil.which("virt-xml-validate")
        self.assertIsNotNone(tool, "virt-xml-validate not found: " + INSTALL_HINT)
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, "domain.xml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(xml)
        result = subprocess.run([tool, path, "domain"], capture_output=True, text=True, timeout=120, check=False)
        self.assertEqual(0, result.returncode, "%s\n%s\n%s" % (result.stdout, result.stderr, xml))

    def test_heartbeat_domain_validates(self) -> None:
        instance, image_meta = self.make_instance({"ha_guest:heartbeat": "true"})
        xml = self.guest_xml(self.make_driver(), instance, image_meta)
        self.assertEqual(1, len(base.channels(xml, base.HA_CHANNEL)))
        self.validate(xml)

    def test_with_guest_agent_validates(self) -> None:
        instance, image_meta = self.make_instance(
            {"ha_guest:heartbeat": "true", "ha_guest:server_group_messaging": "true"},
            {"hw_qemu_guest_agent": "yes"},
        )
        xml = self.guest_xml(self.make_driver(), instance, image_meta)
        self.assertEqual(1, len(base.channels(xml, base.QGA_CHANNEL)))
        self.assertEqual(1, len(base.channels(xml, base.HA_CHANNEL)))
        self.validate(xml)

    def test_features_metadata_validates(self) -> None:
        # libvirt's schema takes any element in <metadata> (customElement), so this only shows
        # that ours sits in a valid place; test_real_libvirtd checks libvirt finds it by namespace.
        for extra_specs, image_properties in (({"ha_guest:heartbeat": "true"}, {}),
                                              ({"ha_guest:server_group_messaging": "true"}, {}),
                                              ({}, {"ha_guest_heartbeat": "true",
                                                    "ha_guest_server_group_messaging": "true"})):
            instance, image_meta = self.make_instance(extra_specs, image_properties)
            xml = self.guest_xml(self.make_driver(), instance, image_meta)
            self.assertEqual(1, len(base.features_elements(xml)), xml)
            self.validate(xml)

    def test_validator_catches_a_broken_channel(self) -> None:
        # Proves the check has teeth: a channel without a target type is invalid.
        instance, image_meta = self.make_instance({"ha_guest:heartbeat": "true"})
        xml = self.guest_xml(self.make_driver(), instance, image_meta)
        broken = xml.replace('<target type="virtio" name="%s"/>' % base.HA_CHANNEL, '<target name="x" type="bogus"/>')
        self.assertNotEqual(xml, broken)
        tool = shutil.which("virt-xml-validate")
        self.assertIsNotNone(tool, "virt-xml-validate not found: " + INSTALL_HINT)
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, "broken.xml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(broken)
        result = subprocess.run([tool, path, "domain"], capture_output=True, text=True, timeout=120, check=False)
        self.assertNotEqual(0, result.returncode, result.stdout + result.stderr)
