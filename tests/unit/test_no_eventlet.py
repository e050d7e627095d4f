"""Every host-side module imports and runs with eventlet refused, as nova-compute does."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import testtools

# Imported in a fresh interpreter in which `import eventlet` fails (nova 34
# installs the same kind of hook in nova-compute and nova-api).
SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    sys.modules["eventlet"] = None
    from ha_guest.cmd import prepare_process
    prepare_process()
    import ha_guest
    # nova, vitrage and tempest are other projects' processes; their envs test them.
    skip = ("ha_guest.nova", "ha_guest.vitrage", "ha_guest.compute.discovery.libvirt",
            "ha_guest.tempest.plugin", "ha_guest.tempest.tests")
    failed = []
    for info in pkgutil.walk_packages(ha_guest.__path__, "ha_guest."):
        if info.name.startswith(skip) or info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed.append("%s: %r" % (info.name, exc))
    greened = [name for name in sys.modules if name.startswith(("eventlet.", "greenlet"))]
    print("\\n".join(failed + ["loaded: " + name for name in greened]))
    sys.exit(1 if failed or greened else 0)
    """
)


class TestNoEventlet(testtools.TestCase):
    """ha_guest's services never need eventlet."""

    def test_every_module_imports_without_eventlet(self) -> None:
        proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
