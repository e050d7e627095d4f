"""ha_guest.protocol and ha_guest.guest load with the standard library alone."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import unittest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]

# Runs in a fresh interpreter: -I (isolated: no PYTHON* variables, no user site, no cwd on
# the path) and -S (no site module, so no site-packages and no editable-install hooks).
PROBE = r"""
import importlib, json, pkgutil, sys, traceback
sys.path.insert(0, REPO_ROOT)
failed = {}
for package in PACKAGES:
    try:
        pkg = importlib.import_module(package)
    except BaseException:
        failed[package] = traceback.format_exc(limit=3)
        continue
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        if info.name.endswith(".__main__"):
            continue  # importing it would run the program
        try:
            importlib.import_module(info.name)
        except BaseException:
            failed[info.name] = traceback.format_exc(limit=3)
print(json.dumps({"modules": sorted(sys.modules), "failed": failed, "path": sys.path}))
"""


def probe(packages: list) -> dict:
    """Import packages and all their submodules in an isolated interpreter."""
    code = "REPO_ROOT = %r\nPACKAGES = %r\n%s" % (str(REPO_ROOT), packages, PROBE)
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60, cwd="/",
    )
    if result.returncode != 0:
        raise AssertionError("probe failed:\n%s%s" % (result.stdout, result.stderr))
    return json.loads(result.stdout.splitlines()[-1])


def is_stdlib(name: str) -> bool:
    top = name.partition(".")[0]
    return top in sys.stdlib_module_names or top in sys.builtin_module_names or name == "__main__"


class TestStdlibOnly(unittest.TestCase):
    """The guest-side code must run on a bare Python: no third-party imports."""

    def test_protocol_and_guest(self) -> None:
        result = probe(["ha_guest.protocol", "ha_guest.guest"])
        self.assertFalse(any("site-packages" in p for p in result["path"]), result["path"])
        self.assertEqual({}, result["failed"], "modules that failed to import with the stdlib alone")
        allowed = ("ha_guest.protocol", "ha_guest.guest")
        offenders = [
            m for m in result["modules"]
            if not is_stdlib(m) and m != "ha_guest" and not any(m == a or m.startswith(a + ".") for a in allowed)
        ]
        self.assertEqual([], offenders, "non-stdlib modules loaded by ha_guest.protocol / ha_guest.guest")
        self.assertIn("ha_guest.protocol.codec", result["modules"])
        self.assertIn("ha_guest.guest.localapi", result["modules"])

    def test_protocol_alone(self) -> None:
        result = probe(["ha_guest.protocol"])
        self.assertEqual({}, result["failed"])
        others = [m for m in result["modules"] if m.startswith("ha_guest") and m != "ha_guest"
                  and not m.startswith("ha_guest.protocol")]
        self.assertEqual([], others, "ha_guest.protocol must not import other ha_guest packages")
