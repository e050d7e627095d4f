"""Our driver beside an editable Nova (devstack's ``pip install -e``), loaded by Nova itself.

A fresh virtualenv gets Nova 34 editable from its sdist (setuptools' import-hook
style, as devstack's ``setup_develop`` makes it) and ha_guest from a wheel; its
other dependencies are borrowed from this env through a farm of symbolic links
that leaves out ``nova`` and ``ha_guest``. Then, in that venv's own Python:
Nova's ``load_compute_driver`` loads ``ha_guest.HAGuestLibvirtDriver``, and
``pip uninstall ha_guest`` leaves no file of ours behind.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import textwrap
import unittest

NOVA_VERSION = "34.0.0"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "ha_guest", "sdists")
STEP_TIMEOUT_S = 600

# Loads the driver the way nova-compute does, with Nova's fake libvirt
# (no libvirtd needed), and prints where Nova and the driver came from.
LOAD_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["OS_NOVA_DISABLE_EVENTLET_PATCHING"] = "1"
    import nova
    from nova import monkey_patch
    monkey_patch.patch(backend="threading")  # as nova-compute in threading mode, before Nova's test fixtures
    import nova.virt.libvirt.driver
    from nova.tests.fixtures import libvirt as fakelibvirt
    fixture = fakelibvirt.LibvirtFixture()
    fixture.setUp()
    import nova.conf
    nova.conf.CONF([], project="nova")
    nova.conf.CONF.set_override("compute_driver", "ha_guest.HAGuestLibvirtDriver")
    nova.conf.CONF.set_override("virt_type", "qemu", group="libvirt")
    from nova.virt import driver, fake
    loaded = driver.load_compute_driver(fake.FakeVirtAPI())
    print("nova=" + nova.__file__)
    print("driver=" + type(loaded).__module__ + "." + type(loaded).__name__)
    print("libvirt=%s" % isinstance(loaded, nova.virt.libvirt.driver.LibvirtDriver))
    """
)


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run one step with a deadline; its output goes into the failure message."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, **kwargs)  # type: ignore


def _nova_sdist() -> str:
    """Return Nova's sdist, downloaded once into the cache."""
    found = glob.glob(os.path.join(CACHE, "nova-%s.tar.gz" % NOVA_VERSION))
    if found:
        return found[0]
    os.makedirs(CACHE, exist_ok=True)
    result = _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   "--no-build-isolation", "-d", CACHE, "nova==%s" % NOVA_VERSION])
    found = glob.glob(os.path.join(CACHE, "nova-%s.tar.gz" % NOVA_VERSION))
    if result.returncode or not found:
        raise AssertionError("could not download Nova's sdist from the package index:\n" + result.stderr[-3000:])
    return found[0]


class TestEditableNova(unittest.TestCase):
    """The driver loads beside an editable Nova and uninstalls without a trace."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory(prefix="ha_guest-editable-nova-")
        root = cls.tmp.name
        with tarfile.open(_nova_sdist()) as sdist:
            sdist.extractall(root, filter="data")
        cls.nova_src = os.path.join(root, "nova-%s" % NOVA_VERSION)
        venv = os.path.join(root, "venv")
        # No pip or setuptools of its own: this env's (new enough for Nova's pyproject) come through the farm.
        cls.assert_ok(_run([sys.executable, "-m", "venv", "--without-pip", venv]), "create the venv")
        cls.python = os.path.join(venv, "bin", "python")
        cls.site = _run([cls.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
        cls.link_dependencies(os.path.join(root, "deps"))
        cls.assert_ok(_run([cls.python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--editable", cls.nova_src]), "install Nova editable")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    @classmethod
    def link_dependencies(cls, farm: str) -> None:
        """Make this env's packages (pip and setuptools too), except Nova, ha_guest and .pth files, importable."""
        os.makedirs(farm)
        here = sysconfig.get_paths()["purelib"]
        for name in os.listdir(here):
            lowered = name.lower()
            if lowered.startswith(("nova", "ha_guest")) \
                    or lowered.endswith(".pth") or lowered.startswith("__editable__"):
                continue
            os.symlink(os.path.join(here, name), os.path.join(farm, name))
        # Named to sort after __editable__.*.pth: Nova's import hook is set up first.
        with open(os.path.join(cls.site, "zz_ha_guest_test_deps.pth"), "w") as pth:
            pth.write(farm + "\n")

    @staticmethod
    def assert_ok(result: subprocess.CompletedProcess[str], step: str) -> None:
        """Fail with the step's output when it failed."""
        if result.returncode:
            raise AssertionError("%s failed (%d):\n%s\n%s" % (step, result.returncode,
                                                              result.stdout[-2000:], result.stderr[-4000:]))

    def python_c(self, code: str) -> subprocess.CompletedProcess[str]:
        """Run code in the venv's Python, outside the source tree."""
        return _run([self.python, "-c", code], cwd=self.tmp.name)

    def install_ha_guest(self) -> None:
        """Install ha_guest from this checkout as a wheel (what pip does with a path)."""
        self.assert_ok(_run([self.python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                             REPO]), "install ha_guest")

    def ha_guest_files(self) -> list[str]:
        """Every path in the venv's site-packages that belongs to ha_guest."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.site):
            for name in dirnames + filenames:
                if "ha_guest" in name and not name.startswith("zz_ha_guest_test_deps"):
                    found.append(os.path.relpath(os.path.join(dirpath, name), self.site))
        return found

    def check_control(self) -> None:
        """The old layout breaks this editable Nova: the venv really is devstack's case."""
        # The way ha_guest used to install its driver name: one file under
        # site-packages/nova/. It must break this editable Nova, or this
        # venv does not reproduce devstack's and the next test proves nothing.
        shadow = os.path.join(self.site, "nova", "virt", "ha_guest")
        os.makedirs(shadow)
        try:
            with open(os.path.join(shadow, "__init__.py"), "w") as shim:
                shim.write("")
            result = self.python_c("import nova.virt.libvirt")
            self.assertNotEqual(0, result.returncode, "a nova/ folder in site-packages no longer shadows Nova")
            self.assertIn("ModuleNotFoundError", result.stderr)
        finally:
            shutil.rmtree(os.path.join(self.site, "nova"))
        self.assert_ok(self.python_c("import nova.virt.libvirt"), "import editable Nova")

    def test_load_compute_driver_then_uninstall(self) -> None:
        self.check_control()
        self.install_ha_guest()
        self.assertFalse(os.path.exists(os.path.join(self.site, "nova")), "ha_guest must not install into nova/")
        result = self.python_c(LOAD_SCRIPT)
        self.assert_ok(result, "load_compute_driver")
        lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        self.assertTrue(lines["nova"].startswith(self.nova_src), "Nova was not the editable one: %s" % lines["nova"])
        self.assertEqual("ha_guest.nova.driver.HAGuestLibvirtDriver", lines["driver"])
        self.assertEqual("True", lines["libvirt"])

        self.assert_ok(_run([self.python, "-m", "pip", "uninstall", "--yes", "--quiet", "ha_guest"]), "uninstall")
        self.assertEqual([], self.ha_guest_files(), "files left behind by pip uninstall ha_guest")
        result = self.python_c("import nova.virt.ha_guest")
        self.assertIn("No module named 'nova.virt.ha_guest'", result.stderr)
        self.assert_ok(self.python_c("import nova.virt.libvirt"), "import editable Nova after uninstall")
