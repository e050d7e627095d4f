"""Nova's libvirt test harness, set up the way Nova's own driver tests set it up."""

from __future__ import annotations

import typing as ty

import fixtures
from lxml import etree
from nova import context, objects, test
from nova import utils as nova_utils
from nova.tests import fixtures as nova_fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.virt import fake
from nova.virt.libvirt import blockinfo
from oslo_config import cfg
from oslo_utils.fixture import uuidsentinel as uuids

from ha_guest.nova import driver as ha_driver

CONF = cfg.CONF

HA_CHANNEL = "org.openstack.ha_guest.0"
QGA_CHANNEL = "org.qemu.guest_agent.0"


class LibvirtHarnessTestCase(test.NoDBTestCase):
    """A test case with fake libvirt, a temporary instances path and kvm as virt type."""

    REQUIRES_LOCKING = True

    def setUp(self) -> None:
        super().setUp()
        self.context = context.get_admin_context()
        temp_dir = self.useFixture(fixtures.TempDir()).path
        self.flags(instances_path=temp_dir)
        self.flags(virt_type="kvm", group="libvirt")
        self.libvirt = self.useFixture(nova_fixtures.LibvirtFixture())
        self.useFixture(nova_fixtures.CGroupsFixture())
        self.libvirt.mock_uname.return_value = fakelibvirt.os_uname("Linux", "", "6.1.0-0-amd64", "", "x86_64")
        self.stub_out("nova.objects.InstanceList.get_by_host", lambda *a, **k: objects.InstanceList(objects=[]))

    def make_driver(self) -> ha_driver.HAGuestLibvirtDriver:
        """Return our driver the way nova-compute would build it (read-write)."""
        return ha_driver.HAGuestLibvirtDriver(fake.FakeVirtAPI(), False)

    def make_instance(
        self,
        extra_specs: ty.Optional[dict[str, str]] = None,
        image_properties: ty.Optional[dict[str, str]] = None,
        instance_id: int = 1,
    ) -> tuple[objects.Instance, objects.ImageMeta]:
        """Return an instance whose flavor has extra_specs, booted from an image with image_properties."""
        image = {"disk_format": "raw", "container_format": "bare", "properties": dict(image_properties or {})}
        flavor = objects.Flavor(
            memory_mb=512,
            swap=0,
            vcpu_weight=None,
            root_gb=1,
            id=2,
            name="m1.ha",
            ephemeral_gb=0,
            rxtx_factor=1.0,
            flavorid="2",
            vcpus=1,
            extra_specs=dict(extra_specs or {}),
        )
        instance = objects.Instance(
            id=instance_id,
            uuid=uuids.instance,
            project_id="fake",
            user_id="fake",
            display_name="ha-test",
            image_ref=uuids.image,
            root_gb=1,
            ephemeral_gb=0,
            # What nova-compute stores at boot: every image property as image_<name>.
            system_metadata=nova_utils.get_system_metadata_from_image(image, flavor),
            flavor=flavor,
            new_flavor=None,
            old_flavor=None,
            pci_devices=objects.PciDeviceList(),
            numa_topology=None,
            config_drive=None,
            vm_mode=None,
            kernel_id=None,
            ramdisk_id=None,
            os_type="linux",
            ephemeral_key_uuid=None,
            vcpu_model=None,
            host="fake-host",
            node="fake-node",
            task_state=None,
            vm_state=None,
            trusted_certs=None,
            resources=None,
            migration_context=None,
            info_cache=None,
        )
        return instance, objects.ImageMeta.from_dict(image)

    def guest_xml(self, drvr: ty.Any, instance: objects.Instance, image_meta: objects.ImageMeta) -> str:
        """Return the domain XML Nova generates for the instance."""
        disk_info = blockinfo.get_disk_info(CONF.libvirt.virt_type, instance, image_meta)
        return drvr._get_guest_xml(self.context, instance, [], disk_info, image_meta)


FEATURES_NS = "http://openstack.org/xmlns/libvirt/ha_guest/1.0"


def features_elements(xml: str) -> list[etree._Element]:
    """Return the <ha_guest:features> elements in the domain XML's <metadata>."""
    root = etree.fromstring(xml.encode("utf-8"))
    return root.findall("./metadata/{%s}features" % FEATURES_NS)


def channels(xml: str, target_name: str) -> list[etree._Element]:
    """Return the <channel> elements of a domain XML with this target name."""
    root = etree.fromstring(xml.encode("utf-8"))
    return root.findall("./devices/channel/target[@name='%s']/.." % target_name)
