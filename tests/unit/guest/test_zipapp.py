"""Tests of the one-file guest build (tools/build-guest-zipapp.py) and its launcher."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from types import ModuleType
from typing import List

import testtools

from ha_guest.guest import launcher

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
TOOL = REPO_ROOT / "tools" / "build-guest-zipapp.py"
ALLOWED_DIRS = ("ha_guest/protocol/", "ha_guest/guest/")


def _load_tool() -> ModuleType:
    # The file name has dashes, so it is loaded by path rather than imported.
    spec = importlib.util.spec_from_file_location("build_guest_zipapp", str(TOOL))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestZipapp(testtools.TestCase):
    """Builds the archive once per test into a temporary folder and runs it."""

    def setUp(self) -> None:
        super().setUp()
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="ha-guest-zipapp-test-"))
        self.addCleanup(shutil.rmtree, str(self.tmp), True)
        self.tool = _load_tool()
        self.pyz = self.tool.build(self.tmp / "dist")

    def run_pyz(self, pyz: pathlib.Path, *args: str) -> "subprocess.CompletedProcess[str]":
        # -I -S: no environment, no site-packages (where the editable install lives), so only the
        # standard library and the archive itself can satisfy imports, as in a bare guest image.
        return subprocess.run(
            [sys.executable, "-I", "-S", str(pyz), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=str(self.tmp),
        )

    def names(self) -> List[str]:
        with zipfile.ZipFile(str(self.pyz)) as archive:
            return archive.namelist()

    def test_members(self) -> None:
        names = self.names()
        files = [n for n in names if not n.endswith("/")]
        unexpected = [
            n
            for n in files
            if n not in ("__main__.py", "ha_guest/__init__.py")
            and not (n.startswith(ALLOWED_DIRS) and n.endswith(".py") and n.count("/") == 2)
        ]
        self.assertEqual([], unexpected)
        for needed in (
            "__main__.py",
            "ha_guest/__init__.py",
            "ha_guest/protocol/__init__.py",
            "ha_guest/guest/__init__.py",
            "ha_guest/guest/localapi.py",
            "ha_guest/guest/client.py",
            "ha_guest/guest/cli.py",
            "ha_guest/guest/launcher.py",
        ):
            self.assertIn(needed, names)
        self.assertFalse([n for n in names if "__pycache__" in n or n.endswith(".pyc")])

    def test_shebang_and_mode(self) -> None:
        with open(str(self.pyz), "rb") as handle:
            self.assertEqual(b"#!/usr/bin/env python3\n", handle.readline())
        self.assertTrue(os.access(str(self.pyz), os.X_OK))
        self.assertEqual("ha-guest.pyz", self.pyz.name)

    def test_rebuild_is_identical(self) -> None:
        again = self.tool.build(self.tmp / "again")
        self.assertEqual(self.pyz.read_bytes(), again.read_bytes())

    def test_client_help(self) -> None:
        result = self.run_pyz(self.pyz, "client", "--help")
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn("usage: ha-guest-client", result.stdout)

    def test_client_runs(self) -> None:
        result = self.run_pyz(self.pyz, "client", "--socket", str(self.tmp / "none.sock"), "status")
        self.assertEqual(3, result.returncode, result.stderr)
        self.assertIn("no agent socket", result.stderr)

    def test_agent_help(self) -> None:
        result = self.run_pyz(self.pyz, "agent", "--help")
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn("usage: ha-guest-agent", result.stdout)

    def test_named_copy(self) -> None:
        copy = self.tmp / "ha-guest-client"
        shutil.copyfile(str(self.pyz), str(copy))
        result = self.run_pyz(copy, "--help")
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn("usage: ha-guest-client", result.stdout)

    def test_no_command(self) -> None:
        result = self.run_pyz(self.pyz)
        self.assertEqual(2, result.returncode)
        self.assertIn("ha-guest.pyz agent", result.stderr)

    def test_tool_main(self) -> None:
        self.assertEqual(0, self.tool.main(["--output", str(self.tmp / "out"), "--name", "x.pyz"]))
        self.assertTrue((self.tmp / "out" / "x.pyz").is_file())


class TestLauncher(testtools.TestCase):
    """The launcher picks the program from the file name or the first argument."""

    def test_by_name(self) -> None:
        for argv0, expected in (
            ("/usr/local/bin/ha-guest-agent", "agent"),
            ("ha-guest-agent.pyz", "agent"),
            ("/opt/ha-guest-client", "client"),
        ):
            args = ["client"]
            self.assertEqual(expected, launcher.choose(argv0, args))
            self.assertEqual(["client"], args)

    def test_by_subcommand(self) -> None:
        args = ["client", "status"]
        self.assertEqual("client", launcher.choose("ha-guest.pyz", args))
        self.assertEqual(["status"], args)
        self.assertIsNone(launcher.choose("ha-guest.pyz", ["status"]))
        self.assertIsNone(launcher.choose("ha-guest.pyz", []))
