"""The finder behind ``compute_driver = ha_guest.HAGuestLibvirtDriver``, without Nova."""

from __future__ import annotations

import importlib.util
import os
import sys

import testtools

from ha_guest.nova import virt_finder


class TestNovaVirtFinder(testtools.TestCase):
    """Exactly one name resolves, to the shim's file; everything else is left to Python."""

    def test_resolves_nova_virt_ha_guest_to_shim_file(self) -> None:
        spec = virt_finder.NovaVirtFinder.find_spec("nova.virt.ha_guest")
        self.assertIsNotNone(spec)
        assert spec is not None
        self.assertEqual("nova.virt.ha_guest", spec.name)
        shim = importlib.util.find_spec("ha_guest.nova.shim")
        assert shim is not None
        self.assertEqual(shim.origin, spec.origin)
        self.assertEqual("shim.py", os.path.basename(spec.origin or ""))

    def test_other_names_are_not_ours(self) -> None:
        for name in ("nova", "nova.virt", "nova.virt.libvirt", "nova.virt.ha_guest.x", "ha_guest", "nova.virt.ha"):
            self.assertIsNone(virt_finder.NovaVirtFinder.find_spec(name), name)

    def test_install_once_and_last(self) -> None:
        saved = list(sys.meta_path)
        self.addCleanup(setattr, sys, "meta_path", saved)
        sys.meta_path[:] = [f for f in sys.meta_path if f is not virt_finder.NovaVirtFinder]
        virt_finder.install()
        virt_finder.install()
        self.assertEqual(1, sys.meta_path.count(virt_finder.NovaVirtFinder))
        self.assertIs(virt_finder.NovaVirtFinder, sys.meta_path[-1])

    def test_uses_standard_library_only(self) -> None:
        # It runs in every interpreter of the environment via the .pth file.
        import ast

        tree = ast.parse(open(virt_finder.__file__, encoding="utf-8").read())
        modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for alias in node.names}
        modules |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        self.assertLessEqual(modules, {"__future__", "importlib", "sys", "typing"})
