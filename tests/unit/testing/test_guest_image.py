"""guest_image: running the build script and the domain XML it describes."""

from __future__ import annotations

import os
import pathlib
import xml.etree.ElementTree as ElementTree

import fixtures
import testtools

from ha_guest.testing import guest_image

FAKE_TOOL = """import json, os, sys
if os.environ.get('FAKE_FAIL'):
    sys.exit('no busybox-static')
folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'image')
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, 'manifest.json'), 'w') as handle:
    json.dump({'argv': sys.argv[1:], 'sizes': {'initrd.img': 1}}, handle)
print('built', file=sys.stderr)
print(folder)
"""


class TestBuildImage(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.source = self.useFixture(fixtures.TempDir()).path
        os.makedirs(os.path.join(self.source, 'tools'))
        pathlib.Path(self.source, guest_image.TOOL).write_text(FAKE_TOOL, encoding='utf-8')

    def test_runs_the_tool_and_reads_the_manifest(self) -> None:
        image = guest_image.build_image(output=None, source=self.source)
        self.assertEqual(['--print-path'], image.manifest['argv'])
        self.assertEqual(pathlib.Path(self.source, 'tools', 'image', 'initrd.img'), image.initrd)
        image = guest_image.build_image(output='/somewhere', source=self.source)
        self.assertEqual(['--print-path', '--output', '/somewhere'], image.manifest['argv'])

    def test_failure_carries_the_tools_error(self) -> None:
        self.useFixture(fixtures.EnvironmentVariable('FAKE_FAIL', '1'))
        exc = self.assertRaises(guest_image.ImageError, guest_image.build_image, None, self.source)
        self.assertIn('no busybox-static', str(exc))

    def test_checkout_found_from_source_or_environment(self) -> None:
        self.assertEqual(pathlib.Path(self.source, guest_image.TOOL), guest_image.find_tool(self.source))
        self.useFixture(fixtures.EnvironmentVariable('HA_GUEST_SOURCE', self.source))
        self.assertEqual(pathlib.Path(self.source, guest_image.TOOL), guest_image.find_tool())


class TestDomainXml(testtools.TestCase):

    def test_nova_shaped_domain(self) -> None:
        image = guest_image.GuestImage(pathlib.Path('/images/x'), {})
        root = ElementTree.fromstring(guest_image.domain_xml('vm-1', '0b7f0c6e-0000-4000-8000-000000000001', image))
        self.assertEqual('qemu', root.get('type'))
        self.assertEqual(('/images/x/vmlinuz', '/images/x/initrd.img', guest_image.KERNEL_CMDLINE),
                         (root.findtext('os/kernel'), root.findtext('os/initrd'), root.findtext('os/cmdline')))
        self.assertEqual('pty', root.find('devices/serial').get('type'))
        channel = root.find('devices/channel')
        self.assertEqual(('unix', 'bind', '/var/lib/libvirt/qemu/org.openstack.ha_guest.0.vm-1.sock',
                          'org.openstack.ha_guest.0'),
                         (channel.get('type'), channel.find('source').get('mode'), channel.find('source').get('path'),
                          channel.find('target').get('name')))

    def test_another_channel_name_goes_to_the_guest(self) -> None:
        image = guest_image.GuestImage(pathlib.Path('/images/x'), {})
        root = ElementTree.fromstring(guest_image.domain_xml('vm-1', '0b7f0c6e-0000-4000-8000-000000000001', image,
                                                             channel='org.example.test.0'))
        self.assertEqual(guest_image.KERNEL_CMDLINE + ' ha_guest.channel=org.example.test.0',
                         root.findtext('os/cmdline'))
        self.assertEqual('org.example.test.0', root.find('devices/channel/target').get('name'))
