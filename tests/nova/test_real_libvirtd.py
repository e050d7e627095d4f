"""A real libvirtd (QEMU/TCG) defines and starts the domain XML that Nova generates through our driver.

The XML comes from Nova's own code path, as in test_domain_xml. Only what
cannot exist on a test machine is adapted, and the test asserts that nothing
else changed:

* the root disk: Nova's image backend would have created the qcow2 file in
  the instance folder; the test creates an empty one at the same path with
  qemu-img (a file on disk, not a change to the XML);
* the domain type, kvm -> qemu: these machines have no usable KVM, so the
  domain runs under TCG. The test with ``virt_type = qemu`` needs no change
  at all.

There are no network interfaces to adapt: the XML is built without ports.
libvirt-python can't be used inside Nova's harness, so the tests drive
libvirtd with the ``virsh`` CLI; tools/ensure-libvirt.sh (run by
``tox -e nova``) installs and starts libvirtd.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import typing as ty

import fixtures
from lxml import etree
from nova import objects
from oslo_config import cfg
from oslo_utils import uuidutils

from ha_guest.compute.discovery import base as discovery_base
from ha_guest.compute.discovery import libvirt_domain
from ha_guest.protocol import constants
from tests.nova import base

CONF = cfg.CONF

URI = "qemu:///system"
HINT = "run tools/ensure-libvirt.sh as root (tox -e nova does)"
#: Bound of one virsh call; a healthy call takes well under a second.
VIRSH_TIMEOUT = 60
#: Bound of a wait for the socket; libvirt creates it before `virsh start` returns.
SOCKET_WAIT = 10.0
#: Instance names that can't be mistaken for a real Nova instance on this host.
NAME_TEMPLATE = "ha-guest-test-%08x"
CHANNEL_RE = re.compile(r"<channel\b.*?</channel>", re.DOTALL)


def channel_text(xml: str, target_name: str) -> list[str]:
    """The <channel> elements of the domain XML with this target name, as the exact text."""
    return [chan for chan in CHANNEL_RE.findall(xml) if 'name="%s"' % target_name in chan]


class TestRealLibvirtd(base.LibvirtHarnessTestCase):
    """Nova's domain XML with our channel runs in QEMU, and libvirt serves our socket."""

    def setUp(self) -> None:
        super().setUp()
        self.assertIsNotNone(shutil.which("virsh"), "virsh not found: " + HINT)
        self.assertIsNotNone(shutil.which("qemu-img"), "qemu-img not found: " + HINT)
        result = self.run_tool(["virsh", "-c", URI, "version"], timeout=15)
        self.assertEqual(0, result.returncode, "libvirtd does not answer on %s: %s\n%s" % (URI, HINT, result.stderr))
        self.flags(instance_name_template=NAME_TEMPLATE)

    # -- helpers ---------------------------------------------------------------

    def run_tool(self, argv: list[str], timeout: float = VIRSH_TIMEOUT) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError("%s did not finish within %ss: %s" % (" ".join(argv), timeout, HINT)) from exc

    def virsh(self, *args: str) -> str:
        """Run virsh on qemu:///system; fail with its output unless it succeeds."""
        result = self.run_tool(["virsh", "-c", URI, *args])
        self.assertEqual(
            0, result.returncode, "virsh %s failed:\n%s%s" % (" ".join(args), result.stdout, result.stderr)
        )
        return result.stdout

    def nova_xml(
        self, extra_specs: dict[str, str], image_properties: ty.Optional[dict[str, str]] = None
    ) -> tuple[objects.Instance, str]:
        """Return an instance with a unique name and UUID and the domain XML Nova generates for it."""
        # Unique in every test and worker process, so runs never collide on libvirtd.
        instance_id = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF or 1
        instance, image_meta = self.make_instance(extra_specs, image_properties, instance_id=instance_id)
        instance.uuid = uuidutils.generate_uuid()
        return instance, self.guest_xml(self.make_driver(), instance, image_meta)

    def adapt(self, xml: str) -> str:
        """Return the XML changed only where this machine needs it (no KVM), creating the disk files."""
        root = etree.fromstring(xml.encode("utf-8"))
        self.assertEqual([], root.findall("./devices/interface"), "built without ports: nothing to adapt")
        for disk in root.findall("./devices/disk[@type='file']"):
            self.create_disk(disk.find("source").get("file"), disk.find("driver").get("type"))
        # The only change to the text: TCG instead of KVM.
        adapted = xml.replace('<domain type="kvm">', '<domain type="qemu">', 1)
        self.assertTrue(adapted.startswith('<domain type="qemu">'), adapted[:200])
        return adapted

    def create_disk(self, path: str, disk_format: str) -> None:
        """Create an empty disk where Nova's image backend would have put the instance's image."""
        instances = os.path.realpath(CONF.instances_path)
        self.assertTrue(os.path.realpath(path).startswith(instances + os.sep), "%s outside %s" % (path, instances))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # QEMU runs as libvirt-qemu and must reach the disk, as it reaches
        # /var/lib/nova/instances; the harness's temporary folders are 0700.
        top = os.path.realpath(tempfile.gettempdir())
        folder = os.path.dirname(os.path.realpath(path))
        self.assertTrue(folder.startswith(top + os.sep), "%s outside %s" % (folder, top))
        while True:
            os.chmod(folder, os.stat(folder).st_mode | 0o011)
            if folder == top:
                break
            folder = os.path.dirname(folder)
        result = self.run_tool(["qemu-img", "create", "-q", "-f", disk_format, path, "1G"])
        self.assertEqual(0, result.returncode, "qemu-img create failed: %s" % result.stderr)

    def remove_domain(self, domain_uuid: str) -> None:
        """Destroy (if running) and undefine the domain; never touches another one (by UUID)."""
        states = self.run_tool(["virsh", "-c", URI, "domstate", domain_uuid])
        if states.returncode != 0:
            return  # never defined, or already gone
        if states.stdout.strip() != "shut off":
            self.virsh("destroy", domain_uuid)
        self.virsh("undefine", domain_uuid)

    def wait_for_socket(self, path: str) -> None:
        deadline = time.monotonic() + SOCKET_WAIT
        while not os.path.exists(path):
            if time.monotonic() >= deadline:
                self.fail("libvirt did not create %s within %ss" % (path, SOCKET_WAIT))
            time.sleep(0.05)
        self.assertTrue(stat.S_ISSOCK(os.stat(path).st_mode), "%s is not a socket" % path)

    def connect(self, path: str) -> None:
        """Connect to the socket as a client, as the ha_guest compute agent does."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5.0)
            client.connect(path)

    def run_in_libvirtd(self, instance: objects.Instance, xml: str, generated: str) -> etree._Element:
        """Define and start the adapted XML; check our channel end to end; return the live XML."""
        ours = channel_text(generated, base.HA_CHANNEL)
        self.assertEqual(1, len(ours), generated)
        # Our channel reaches libvirt byte for byte as Nova generated it.
        self.assertEqual(ours, channel_text(xml, base.HA_CHANNEL))
        path = constants.host_socket_path(instance.name)
        self.assertEqual("/var/lib/libvirt/qemu/org.openstack.ha_guest.0.%s.sock" % instance.name, path)
        self.assertIn('path="%s"' % path, ours[0])

        xml_path = os.path.join(self.useFixture(fixtures.TempDir()).path, "domain.xml")
        with open(xml_path, "w", encoding="utf-8") as handle:
            handle.write(xml)
        self.virsh("define", xml_path)
        self.addCleanup(self.remove_domain, instance.uuid)
        self.virsh("start", instance.uuid)
        self.assertEqual("running", self.virsh("domstate", instance.uuid).strip())

        self.wait_for_socket(path)
        self.connect(path)

        live = etree.fromstring(self.virsh("dumpxml", instance.uuid).encode("utf-8"))
        self.assertEqual(instance.name, live.findtext("name"))
        found = live.findall("./devices/channel/target[@name='%s']/.." % base.HA_CHANNEL)
        self.assertEqual(1, len(found), etree.tostring(live, encoding="unicode"))
        chan = found[0]
        self.assertEqual("unix", chan.get("type"))
        self.assertEqual(("bind", path), (chan.find("source").get("mode"), chan.find("source").get("path")))
        self.assertEqual("virtio", chan.find("target").get("type"))
        # libvirt put the port on the virtio-serial controller it added for it.
        self.assertEqual("virtio-serial", chan.find("address").get("type"))
        self.assertEqual(1, len(live.findall("./devices/controller[@type='virtio-serial']")))
        # libvirt keeps our features metadata as Nova generated it (live and persistent XML alike).
        generated_features = base.features_elements(generated)
        self.assertEqual(1, len(generated_features), generated)
        for dumped in (live, etree.fromstring(self.virsh("dumpxml", "--inactive", instance.uuid).encode("utf-8"))):
            kept = dumped.findall("./metadata/{%s}features" % base.FEATURES_NS)
            self.assertEqual([dict(generated_features[0].attrib)], [dict(element.attrib) for element in kept])
        # What the compute agent's libvirt discovery reads from libvirt's XML.
        path_read, features = libvirt_domain.domain_channel(etree.tostring(live, encoding="unicode"),
                                                            base.HA_CHANNEL)
        self.assertEqual(path, path_read)
        self.assertEqual(
            (generated_features[0].get("heartbeat") == "true",
             generated_features[0].get("server_group_messaging") == "true"),
            (features.heartbeat, features.server_group_messaging))
        # libvirt's metadata API finds it under our namespace, as it stores custom metadata.
        self.assertIn("server_group_messaging=", self.virsh("metadata", instance.uuid, "--uri", base.FEATURES_NS))
        return live

    # -- tests -----------------------------------------------------------------

    def test_heartbeat_domain_runs(self) -> None:
        instance, generated = self.nova_xml({"ha_guest:heartbeat": "true"})
        xml = self.adapt(generated)
        # Nothing else changed.
        self.assertEqual(generated, xml.replace('<domain type="qemu">', '<domain type="kvm">', 1))
        self.run_in_libvirtd(instance, xml, generated)

    def test_sgm_only_domain_runs(self) -> None:
        instance, generated = self.nova_xml({"ha_guest:server_group_messaging": "true"})
        live = self.run_in_libvirtd(instance, self.adapt(generated), generated)
        self.assertEqual(discovery_base.Features(heartbeat=False, server_group_messaging=True),
                         libvirt_domain.channel_features(etree.tostring(live, encoding="unicode")))

    def test_both_features_from_the_image(self) -> None:
        instance, generated = self.nova_xml(
            {}, {"ha_guest_heartbeat": "true", "ha_guest_server_group_messaging": "true"})
        live = self.run_in_libvirtd(instance, self.adapt(generated), generated)
        self.assertEqual(discovery_base.Features(heartbeat=True, server_group_messaging=True),
                         libvirt_domain.channel_features(etree.tostring(live, encoding="unicode")))

    def test_beside_qemu_guest_agent(self) -> None:
        instance, generated = self.nova_xml({"ha_guest:heartbeat": "true"}, {"hw_qemu_guest_agent": "yes"})
        xml = self.adapt(generated)
        self.assertEqual(generated, xml.replace('<domain type="qemu">', '<domain type="kvm">', 1))
        live = self.run_in_libvirtd(instance, xml, generated)
        # The QEMU guest agent's channel works as before, on a socket of its own.
        qga_path = "/var/lib/libvirt/qemu/org.qemu.guest_agent.0.%s.sock" % instance.name
        qga = live.findall("./devices/channel/target[@name='%s']/.." % base.QGA_CHANNEL)
        self.assertEqual([qga_path], [chan.find("source").get("path") for chan in qga])
        self.wait_for_socket(qga_path)
        self.connect(qga_path)

    def test_qemu_virt_type_needs_no_change(self) -> None:
        # What nova-compute generates with [libvirt] virt_type = qemu runs as it is.
        self.flags(virt_type="qemu", group="libvirt")
        instance, generated = self.nova_xml({"ha_guest:heartbeat": "true"})
        self.assertEqual(generated, self.adapt(generated))
        self.run_in_libvirtd(instance, generated, generated)
