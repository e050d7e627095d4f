#!/usr/bin/env python3
"""Build the ha_guest test guest: a Debian kernel and an initramfs running ha-guest-agent (stdlib only).

Usage: python3 tools/build-guest-image.py [--output DIR] [--print-path] [--cache-dir DIR] [--rebuild]

Everything comes from this machine's Debian packages: busybox (busybox-static),
Python 3.11 (python3.11-minimal, libpython3.11-stdlib: the interpreter, the
shared libraries ldd names and a trimmed, precompiled stdlib) and the kernel
that linux-image-amd64 depends on (``apt-get download`` then ``dpkg-deb``:
its vmlinuz and the virtio console modules). Missing packages are installed
with apt-get when run as root. The initramfs (gzip'd newc cpio, written here,
so no cpio is needed) adds the guest zipapp (tools/build-guest-zipapp.py) as
/usr/local/bin/ha-guest-agent and ha-guest-client, and tools/guest-image/init
as /init: see doc/source/guest-image.rst for what it does and the console
commands it takes.

The result is cached in ``<cache-dir>/<key>/`` (default
``~/.cache/ha_guest/guest-image``, or $HA_GUEST_IMAGE_CACHE), the key being a
hash of this script, the files it packs and the package versions: a second run
only computes the key. It prints the paths of vmlinuz and initrd.img (or, with
--print-path, the folder only); --output copies both files into DIR too.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Dict, Iterable, List, Optional, Tuple

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES_DIR = REPO_ROOT / "tools" / "guest-image"
CHANNEL = "org.openstack.ha_guest.0"
PYTHON = "python3.11"
#: Packages whose files go into the image; their versions are part of the cache key.
PACKAGES = ("busybox-static", "python3.11-minimal", "libpython3.11-stdlib", "libc6", "zlib1g", "libexpat1")
#: The virtio console stack, in the order insmod needs (the kernel has no modules.dep use here).
MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "virtio_console")
#: Stdlib entries the agent and the client never import: left out to keep the image small.
STDLIB_EXCLUDE = frozenset([
    "test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "pydoc_data", "distutils",
    "site-packages", "dist-packages", "__pycache__", "sqlite3", "curses", "dbm", "ctypes", "msilib",
    "unittest", "xmlrpc", "wsgiref", "venv", "tomllib", "pydoc.py", "turtle.py", "sitecustomize.py",
    "config-3.11-x86_64-linux-gnu", "LICENSE.txt",
])
_TIMEOUT_S = 600
#: Images kept in the cache (the newest ones).
KEEP_IMAGES = 3
_MTIME = 315619200  # fixed times make the same inputs give the same bytes


def run(cmd: List[str], **kwargs: object) -> str:
    """Run a command (bounded in time) and return its standard output."""
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, universal_newlines=True,
                          timeout=_TIMEOUT_S, **kwargs).stdout  # type: ignore[call-overload]


def installed_versions(packages: Iterable[str]) -> Dict[str, str]:
    """{package: installed version} of the Debian packages that are installed."""
    fmt = "${Package} ${db:Status-Abbrev} ${Version}\n"
    result = subprocess.run(["dpkg-query", "-W", "-f=" + fmt] + list(packages), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, universal_newlines=True, timeout=60)
    versions = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "ii":
            versions[parts[0].split(":")[0]] = parts[2]
    return versions


def ensure_packages(packages: Iterable[str]) -> Dict[str, str]:
    """Return {package: version}, installing the missing ones with apt-get (as root)."""
    packages = list(packages)
    missing = [p for p in packages if p not in installed_versions(packages)]
    if missing:
        if os.geteuid() != 0:
            raise SystemExit("missing Debian packages %s: install them as root (apt-get install -y %s)"
                             % (", ".join(missing), " ".join(missing)))
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
        subprocess.run(apt + ["install", "-y", "-qq", "--no-install-recommends"] + missing, check=True,
                       timeout=_TIMEOUT_S, stdout=subprocess.DEVNULL)
    return installed_versions(packages)


def _apt_stamp() -> List[float]:
    """Changes whenever apt's package lists or its configuration change."""
    return [os.stat(path).st_mtime for path in ("/var/lib/apt/lists", "/etc/apt", "/etc/apt/preferences.d")
            if os.path.exists(path)]


def kernel_package(cache_dir: pathlib.Path) -> Tuple[str, str]:
    """(name, candidate version) of the kernel package linux-image-amd64 depends on now."""
    # apt-cache takes seconds on a busy machine: remember its answer until apt's lists change.
    memo = cache_dir / "kernel-package.json"
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
        if known["stamp"] == _apt_stamp():
            return known["name"], known["version"]
    except (OSError, ValueError, KeyError):
        pass
    for line in run(["apt-cache", "depends", "linux-image-amd64"]).splitlines():
        line = line.strip()
        if line.startswith("Depends:") and "linux-image-" in line:
            name = line.split(":", 1)[1].strip()
            for info in run(["apt-cache", "show", "--no-all-versions", name]).splitlines():
                if info.startswith("Version:"):
                    version = info.split(":", 1)[1].strip()
                    cache_dir.mkdir(parents=True, exist_ok=True)
                    memo.write_text(json.dumps({"stamp": _apt_stamp(), "name": name, "version": version}),
                                    encoding="utf-8")
                    return name, version
    raise SystemExit("cannot resolve the kernel package of linux-image-amd64 (apt-get update?)")


def zipapp_module() -> object:
    """tools/build-guest-zipapp.py as a module (its name has a dash)."""
    path = REPO_ROOT / "tools" / "build-guest-zipapp.py"
    spec = importlib.util.spec_from_file_location("build_guest_zipapp", str(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cache_key(versions: Dict[str, str], kernel: Tuple[str, str], zipapp: object) -> str:
    """Hash of everything the image is made of."""
    digest = hashlib.sha256()
    sources = [pathlib.Path(__file__).resolve(), REPO_ROOT / "tools" / "build-guest-zipapp.py"]
    sources += sorted(FILES_DIR.iterdir())
    sources += [REPO_ROOT / rel for rel in zipapp.members(REPO_ROOT)]  # type: ignore[attr-defined]
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(json.dumps([sorted(versions.items()), kernel]).encode())
    return digest.hexdigest()[:16]


def extract_kernel(work: pathlib.Path, kernel: Tuple[str, str], root: pathlib.Path) -> str:
    """Download the kernel package; put vmlinuz in work and the modules in root/lib/modules; return vmlinuz."""
    run(["apt-get", "download", "%s=%s" % kernel], cwd=str(work), stderr=subprocess.DEVNULL)
    debs = list(work.glob("*.deb"))
    if len(debs) != 1:
        raise SystemExit("apt-get download %s gave %r" % (kernel[0], debs))
    wanted = {m + ".ko" for m in MODULES}
    (root / "lib" / "modules").mkdir(parents=True)
    vmlinuz = work / "vmlinuz"
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                base = os.path.basename(member.name)
                if member.isfile() and (base in wanted or base.startswith("vmlinuz-")):
                    handle = tar.extractfile(member)
                    assert handle is not None
                    dest = vmlinuz if base.startswith("vmlinuz-") else root / "lib" / "modules" / base
                    dest.write_bytes(handle.read())
                    wanted.discard(base)
        if proc.wait(timeout=_TIMEOUT_S) != 0:
            raise SystemExit("dpkg-deb --fsys-tarfile %s failed" % debs[0])
    debs[0].unlink()
    if wanted or not vmlinuz.exists():
        raise SystemExit("%s lacks %s" % (kernel[0], ", ".join(sorted(wanted)) or "vmlinuz"))
    return str(vmlinuz)


def copy_libraries(binary: str, root: pathlib.Path) -> None:
    """Copy the shared libraries ldd names for binary to the same paths under root."""
    for line in run(["ldd", binary]).splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/") and not (root / path.lstrip("/")).exists():
            dest = root / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(path), str(dest))


def copy_python(root: pathlib.Path) -> None:
    """The interpreter, its libraries and a trimmed stdlib, compiled to sourceless .pyc files."""
    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2("/usr/bin/" + PYTHON, str(root / "usr" / "bin" / PYTHON))
    os.symlink(PYTHON, str(root / "usr" / "bin" / "python3"))
    copy_libraries("/usr/bin/" + PYTHON, root)
    have = {p.name for p in root.rglob("*.so*")}
    src = pathlib.Path("/usr/lib") / PYTHON
    dest = root / "usr" / "lib" / PYTHON

    def ignore(folder: str, names: List[str]) -> List[str]:
        skipped = [n for n in names if n in STDLIB_EXCLUDE or n.endswith((".exe", ".pyc"))]
        if os.path.basename(folder) == "lib-dynload":
            # Extension modules that need a library the image lacks (ssl, sqlite, ...) or only serve tests.
            for name in names:
                needs = [ln.split()[0] for ln in run(["ldd", os.path.join(folder, name)]).splitlines() if "=>" in ln]
                if name.startswith(("_test", "_xx", "xx")) or any(n not in have for n in needs):
                    skipped.append(name)
        return skipped

    shutil.copytree(str(src), str(dest), symlinks=False, ignore=ignore)
    # Sourceless .pyc next to each module: smaller, and nothing to compile at boot under TCG.
    run(["/usr/bin/" + PYTHON, "-m", "compileall", "-q", "-b", "-j", "0", str(dest)])
    for path in dest.rglob("*.py"):
        path.unlink()


#: Run by the image's interpreter: adds unchecked-hash .pyc files (PEP 552) beside the zipapp's modules,
#: which zipimport loads without compiling (zipimport cannot cache what it compiles; about 2 s a start
#: under TCG) and without comparing times; the .py files stay for tracebacks.
_PRECOMPILE = """
import importlib._bootstrap_external as external, importlib.util, io, sys, zipfile
src, dst, where = sys.argv[1:4]
data = open(src, "rb").read()
out = io.BytesIO()
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        body = zin.read(info)
        zout.writestr(info, body)
        if info.filename.endswith(".py"):
            code = compile(body, where + "/" + info.filename, "exec", dont_inherit=True)
            pyc = external._code_to_hash_pyc(code, importlib.util.source_hash(body), checked=False)
            extra = zipfile.ZipInfo(info.filename + "c", info.date_time)
            extra.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(extra, bytes(pyc))
open(dst, "wb").write(data[:data.index(b"\\n") + 1] + out.getvalue())
"""


def precompile_zipapp(pyz: pathlib.Path, dest: pathlib.Path) -> None:
    """Copy the zipapp to dest with its modules compiled by the image's Python."""
    run(["/usr/bin/" + PYTHON, "-I", "-c", _PRECOMPILE, str(pyz), str(dest), "/usr/local/bin/ha-guest-agent"])
    os.chmod(str(dest), 0o755)


def smoke_test(root: pathlib.Path, pyz: pathlib.Path) -> None:
    """Import what the agent and the client use with the image's interpreter and stdlib."""
    code = ("import sys; sys.path.insert(0, %r); import asyncio, subprocess, json, base64, logging, argparse;"
            "import ha_guest.guest.agent, ha_guest.guest.cli, ha_guest.guest.launcher" % str(pyz))
    env = {"PYTHONHOME": str(root / "usr"), "PATH": "/usr/bin:/bin"}
    run([str(root / "usr" / "bin" / PYTHON), "-c", code], env=env)


def stage(root: pathlib.Path, pyz: pathlib.Path) -> None:
    """Lay out the initramfs tree (everything but the kernel modules)."""
    folders = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "etc/ha-guest", "proc", "sys", "run", "tmp")
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", str(root / "bin" / "busybox"))
    for applet in ("sh", "env"):
        os.symlink("/bin/busybox", str(root / "bin" / applet))
    os.symlink("/bin/busybox", str(root / "usr" / "bin" / "env"))
    copy_python(root)
    precompile_zipapp(pyz, root / "usr" / "local" / "bin" / "ha-guest-agent")
    os.symlink("ha-guest-agent", str(root / "usr" / "local" / "bin" / "ha-guest-client"))
    init = (FILES_DIR / "init").read_text(encoding="utf-8")
    init = init.replace("@CHANNEL@", CHANNEL).replace("@MODULES@", " ".join(MODULES))
    (root / "init").write_text(init, encoding="utf-8")
    os.chmod(str(root / "init"), 0o755)
    shutil.copy2(str(FILES_DIR / "agent.conf"), str(root / "etc" / "ha-guest" / "agent.conf"))
    shutil.copy2(str(FILES_DIR / "check.sh"), str(root / "etc" / "ha-guest" / "check.sh"))
    smoke_test(root, root / "usr" / "local" / "bin" / "ha-guest-agent")


def _cpio_entry(out: gzip.GzipFile, name: str, mode: int, data: bytes = b"", ino: int = 0,
                rdev: Tuple[int, int] = (0, 0)) -> None:
    """One newc cpio entry, owned by root."""
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, _MTIME, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % value for value in fields)
    out.write(header + encoded + b"\0" * (-(len(header) + len(encoded)) % 4))
    out.write(data + b"\0" * (-len(data) % 4))


def write_initramfs(root: pathlib.Path, target: pathlib.Path) -> None:
    """Write root as a gzip'd newc cpio archive (sorted, root-owned, fixed times)."""
    with open(str(target), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as out:
        ino = 1
        # The kernel opens /dev/console before /init runs: it must exist in the archive.
        _cpio_entry(out, "dev", stat.S_IFDIR | 0o755, ino=ino)
        _cpio_entry(out, "dev/console", stat.S_IFCHR | 0o600, ino=ino + 1, rdev=(5, 1))
        ino += 2
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if rel == "dev":
                continue
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                data = os.readlink(str(path)).encode()
            elif stat.S_ISREG(info.st_mode):
                data = path.read_bytes()
            else:
                data = b""
            _cpio_entry(out, rel, stat.S_IFMT(info.st_mode) | stat.S_IMODE(info.st_mode), data, ino=ino)
            ino += 1
        _cpio_entry(out, "TRAILER!!!", 0)


def build(cache_dir: pathlib.Path, rebuild: bool = False, log: bool = True) -> pathlib.Path:
    """Build the image (or find it in the cache); return its folder."""
    started = time.monotonic()
    versions = ensure_packages(PACKAGES)
    kernel = kernel_package(cache_dir)
    zipapp = zipapp_module()
    key = cache_key(versions, kernel, zipapp)
    folder = cache_dir / key
    if (folder / "manifest.json").exists() and not rebuild:
        return folder
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=str(cache_dir)) as tmp:
        work = pathlib.Path(tmp)
        root = work / "root"
        root.mkdir()
        vmlinuz = extract_kernel(work, kernel, root)
        pyz = zipapp.build(work, "ha-guest.pyz")  # type: ignore[attr-defined]
        stage(root, pyz)
        out = work / "out"
        out.mkdir()
        shutil.move(vmlinuz, str(out / "vmlinuz"))
        write_initramfs(root, out / "initrd.img")
        manifest = {
            "key": key, "kernel": {"package": kernel[0], "version": kernel[1]}, "packages": versions,
            "channel": CHANNEL, "modules": list(MODULES),
            "sizes": {name: (out / name).stat().st_size for name in ("vmlinuz", "initrd.img")},
            "unpacked_bytes": sum(p.lstat().st_size for p in root.rglob("*")),
            "build_seconds": round(time.monotonic() - started, 1),
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        # World-readable: libvirt's QEMU (user libvirt-qemu) reads the copies of these files.
        for path in out.iterdir():
            os.chmod(str(path), 0o644)
        os.chmod(str(out), 0o755)
        if folder.exists():
            shutil.rmtree(str(folder))
        os.replace(str(out), str(folder))
    prune(cache_dir, keep=folder)
    if log:
        print("built %s in %.1f s" % (folder, time.monotonic() - started), file=sys.stderr)
    return folder


def prune(cache_dir: pathlib.Path, keep: pathlib.Path, count: int = KEEP_IMAGES) -> None:
    """Remove all but the ``count`` newest images (each source change makes a new one)."""
    images = sorted((p for p in cache_dir.iterdir() if (p / "manifest.json").exists() and p != keep),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for old in images[count - 1:]:
        shutil.rmtree(str(old), ignore_errors=True)


def default_cache_dir() -> pathlib.Path:
    """$HA_GUEST_IMAGE_CACHE, else ~/.cache/ha_guest/guest-image."""
    env = os.environ.get("HA_GUEST_IMAGE_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "ha_guest" / "guest-image"


def main(argv: Optional[List[str]] = None) -> int:
    """Parse the command line, build or reuse the image and print where it is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=str(default_cache_dir()), help="cache folder (default: %(default)s)")
    parser.add_argument("--output", help="also copy vmlinuz, initrd.img and manifest.json into this folder")
    parser.add_argument("--print-path", action="store_true", help="print only the image folder")
    parser.add_argument("--rebuild", action="store_true", help="build even when the cache has the image")
    args = parser.parse_args(argv)
    folder = build(pathlib.Path(args.cache_dir), rebuild=args.rebuild)
    if args.output:
        output = pathlib.Path(args.output)
        output.mkdir(parents=True, exist_ok=True)
        for name in ("vmlinuz", "initrd.img", "manifest.json"):
            shutil.copyfile(str(folder / name), str(output / (name + ".tmp")))
            os.chmod(str(output / (name + ".tmp")), 0o644)
            os.replace(str(output / (name + ".tmp")), str(output / name))
        folder = output
    if args.print_path:
        print(folder)
    else:
        print("kernel: %s\ninitrd: %s" % (folder / "vmlinuz", folder / "initrd.img"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
