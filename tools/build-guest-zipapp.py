#!/usr/bin/env python3
"""Build ha-guest.pyz: the guest agent and client as one executable file (standard library only).

Usage: python tools/build-guest-zipapp.py [--output DIR] [--name FILE]

The archive holds ha_guest/__init__.py, ha_guest/protocol/*.py and ha_guest/guest/*.py and
nothing else, so it runs on any Python >= 3.8 without pip:

    python3 ha-guest.pyz agent --config /etc/ha-guest/agent.conf
    python3 ha-guest.pyz client status

Installed under the name ha-guest-agent or ha-guest-client it runs that program directly.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import zipapp
from typing import List, Optional

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

DEFAULT_NAME = "ha-guest.pyz"

#: Packages copied into the archive (their *.py files, not recursive: neither has subpackages).
PACKAGES = ("ha_guest/protocol", "ha_guest/guest")

INTERPRETER = "/usr/bin/env python3"

MAIN = '''"""Run ha-guest-agent or ha-guest-client from this file (see ha_guest.guest.launcher)."""
import sys

from ha_guest.guest.launcher import main

sys.exit(main())
'''

# Zip timestamps are local DOS times that cannot go before 1980: a day of margin covers every time zone.
_MIN_MTIME = 315619200  # 1980-01-02T00:00:00Z


def members(root: pathlib.Path = REPO_ROOT) -> List[str]:
    """Return the repository-relative paths that go into the archive, sorted."""
    paths = ["ha_guest/__init__.py"]
    for package in PACKAGES:
        found = sorted(p.relative_to(root).as_posix() for p in (root / package).glob("*.py"))
        if package + "/__init__.py" not in found:
            raise SystemExit("%s is not a package (no __init__.py)" % package)
        paths.extend(found)
    return paths


def build(output_dir: pathlib.Path, name: str = DEFAULT_NAME, root: pathlib.Path = REPO_ROOT) -> pathlib.Path:
    """Build the archive into output_dir and return its path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / name
    # Fixed times and modes: rebuilding the same tree on one machine gives the same bytes.
    mtime = max(int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0), _MIN_MTIME)
    with tempfile.TemporaryDirectory(prefix="ha-guest-zipapp-") as tmp:
        stage = pathlib.Path(tmp) / "stage"
        for rel in members(root):
            dest = stage / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(str(root / rel), str(dest))
        (stage / "__main__.py").write_text(MAIN, encoding="utf-8")
        for path in stage.rglob("*"):
            os.chmod(str(path), 0o755 if path.is_dir() else 0o644)
            os.utime(str(path), (mtime, mtime))
        partial = pathlib.Path(tmp) / name
        zipapp.create_archive(str(stage), str(partial), interpreter=INTERPRETER, compressed=True)
        # Replace atomically so a running copy of an older build is never half overwritten.
        shutil.copyfile(str(partial), str(target) + ".tmp")
        os.chmod(str(target) + ".tmp", 0o755)
        os.replace(str(target) + ".tmp", str(target))
    return target


def main(argv: Optional[List[str]] = None) -> int:
    """Parse the command line and build the archive."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO_ROOT / "dist"), help="directory to write to (default: dist/)")
    parser.add_argument("--name", default=DEFAULT_NAME, help="file name (default: %s)" % DEFAULT_NAME)
    args = parser.parse_args(argv)
    target = build(pathlib.Path(args.output), args.name)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
