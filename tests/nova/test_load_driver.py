"""nova-compute finds our driver by the configured compute_driver name."""

from __future__ import annotations

import importlib.metadata
import os

import nova
import nova.virt
from nova.virt import driver as virt_driver
from nova.virt import fake
from nova.virt.libvirt import driver as libvirt_driver

from ha_guest.nova import driver as ha_driver
from tests.nova import base


class TestLoadComputeDriver(base.LibvirtHarnessTestCase):
    """load_compute_driver() imports nova.virt.<compute_driver>, as nova-compute does."""

    def test_configured_name(self) -> None:
        self.flags(compute_driver="ha_guest.HAGuestLibvirtDriver")
        loaded = virt_driver.load_compute_driver(fake.FakeVirtAPI())
        self.assertIsInstance(loaded, ha_driver.HAGuestLibvirtDriver)
        self.assertIsInstance(loaded, libvirt_driver.LibvirtDriver)
        self.assertIsInstance(loaded, virt_driver.ComputeDriver)

    def test_loaded_driver_adds_channel(self) -> None:
        self.flags(compute_driver="ha_guest.HAGuestLibvirtDriver")
        loaded = virt_driver.load_compute_driver(fake.FakeVirtAPI())
        instance, image_meta = self.make_instance({"ha_guest:heartbeat": "true"})
        self.assertEqual(1, len(base.channels(self.guest_xml(loaded, instance, image_meta), base.HA_CHANNEL)))

    def test_name_resolves_to_our_shim(self) -> None:
        import nova.virt.ha_guest as shim

        from ha_guest.nova import shim as shim_source

        self.assertIs(ha_driver.HAGuestLibvirtDriver, shim.HAGuestLibvirtDriver)
        self.assertEqual(shim_source.__file__, shim.__file__)
        self.assertFalse(
            os.path.exists(os.path.join(os.path.dirname(nova.virt.__file__), "ha_guest")),
            "nothing of ha_guest may live inside Nova's own nova/virt folder",
        )


class TestInstalledFiles(base.LibvirtHarnessTestCase):
    """The ha_guest distribution owns no file of Nova's tree, and one .pth file at the top."""

    def test_record(self) -> None:
        # Look in Nova's own site-packages: a source tree on sys.path may hold
        # an ha_guest.egg-info of its own, which is not what was installed.
        site_packages = os.path.dirname(os.path.dirname(nova.__file__))
        dists = list(importlib.metadata.distributions(name="ha_guest", path=[site_packages]))
        self.assertEqual(1, len(dists), "ha_guest must be installed in Nova's site-packages %s" % site_packages)
        files = dists[0].files
        self.assertIsNotNone(files, "ha_guest is not installed with a RECORD")
        paths = sorted(str(f) for f in files or [] if "__pycache__" not in str(f))
        self.assertEqual([], [p for p in paths if p.startswith("nova/")])
        self.assertIn("ha_guest_nova_driver.pth", paths)
        self.assertEqual(
            ["ha_guest_nova_driver.pth"], [p for p in paths if "/" not in p and not p.startswith("..")]
        )


class TestPinnedHook(base.LibvirtHarnessTestCase):
    """The private Nova method we override keeps the signature we rely on."""

    def test_signature(self) -> None:
        import inspect

        self.assertEqual(
            ["self", "guest", "flavor", "instance", "image_meta"],
            list(inspect.signature(libvirt_driver.LibvirtDriver._set_qemu_guest_agent).parameters),
        )
