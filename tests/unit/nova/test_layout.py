"""The pieces Nova loads by name exist where setup.py and setup.cfg say, checked without Nova."""

from __future__ import annotations

import ast
import configparser
import pathlib

import testtools

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
NOVA_PKG = REPO_ROOT / "ha_guest" / "nova"


def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _setup_py_paths() -> dict[str, str]:
    """Return the ``NAME = os.path.join('a', 'b')`` constants of setup.py as 'a/b'."""
    paths = {}
    for node in _tree(REPO_ROOT / "setup.py").body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        if ast.unparse(node.value.func) != "os.path.join":
            continue
        parts = [arg.value for arg in node.value.args if isinstance(arg, ast.Constant)]
        for target in node.targets:
            if isinstance(target, ast.Name):
                paths[target.id] = "/".join(parts)
    return paths


class TestShim(testtools.TestCase):
    """The module loaded as nova.virt.ha_guest only re-exports the driver."""

    def test_shim_reexports_driver(self) -> None:
        tree = _tree(NOVA_PKG / "shim.py")
        imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        self.assertEqual(1, len(imports))
        imp = imports[0]
        assert isinstance(imp, ast.ImportFrom)
        self.assertEqual("ha_guest.nova.driver", imp.module)
        self.assertEqual(["HAGuestLibvirtDriver"], [alias.name for alias in imp.names])

    def test_driver_class_defined(self) -> None:
        tree = _tree(NOVA_PKG / "driver.py")
        classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
        self.assertIn("HAGuestLibvirtDriver", classes)
        methods = {n.name for n in classes["HAGuestLibvirtDriver"].body if isinstance(n, ast.FunctionDef)}
        self.assertIn("_set_qemu_guest_agent", methods)

    def test_setup_py_ships_the_finder_pth(self) -> None:
        paths = _setup_py_paths()
        self.assertEqual("ha_guest/nova/ha_guest_nova_driver.pth", paths.get("NOVA_PTH_SOURCE"))
        lines = (REPO_ROOT / paths["NOVA_PTH_SOURCE"]).read_text(encoding="utf-8").splitlines()
        # One line, run by site.py at every interpreter start: it must begin with "import".
        self.assertEqual(1, len(lines))
        self.assertTrue(lines[0].startswith("import ha_guest.nova.virt_finder "))

    def test_no_nova_package_in_repo(self) -> None:
        # Shipping nova/__init__.py would shadow or clobber Nova itself.
        self.assertFalse((REPO_ROOT / "nova").exists())


class TestValidatorEntryPoint(testtools.TestCase):
    """setup.cfg registers our validators with nova-api."""

    def test_entry_point_declared(self) -> None:
        cfg = configparser.ConfigParser()
        cfg.read(REPO_ROOT / "setup.cfg", encoding="utf-8")
        lines = [line.strip() for line in cfg.get("entry_points", "nova.api.extra_spec_validators").splitlines()]
        self.assertIn("ha_guest = ha_guest.nova.extra_specs", lines)

    def test_module_has_register(self) -> None:
        tree = _tree(NOVA_PKG / "extra_specs.py")
        self.assertIn("register", {n.name for n in tree.body if isinstance(n, ast.FunctionDef)})

    def test_only_nova_package_imports_nova(self) -> None:
        offenders = []
        for path in (REPO_ROOT / "ha_guest").rglob("*.py"):
            if NOVA_PKG in path.parents:
                continue
            for node in ast.walk(_tree(path)):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                if any(name == "nova" or name.startswith("nova.") for name in names):
                    offenders.append(str(path.relative_to(REPO_ROOT)))
        self.assertEqual([], offenders)
