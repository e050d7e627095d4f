"""The test guest image from a test's side: build or reuse it, describe a domain booting it.

The image itself is built by tools/build-guest-image.py (doc/source/guest-image.rst);
this module runs that script, so it works from a checkout (tox runs tests from
the repository root), not from an installed wheel alone.

    image = guest_image.build_image()                  # cached: well under a second
    xml = guest_image.domain_xml('vm-1', str(uuid.uuid4()), image)
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
from typing import Any, Dict, Optional

from ha_guest.protocol.constants import CHANNEL_NAME, host_socket_path

#: Where the image is copied for QEMU: libvirt's QEMU (user libvirt-qemu) cannot read root's cache.
IMAGE_DIR = '/var/lib/libvirt/images/ha-guest-test-image'
#: The console must be the first serial port: the image's init takes its commands there.
KERNEL_CMDLINE = 'console=ttyS0 panic=-1 quiet'
TOOL = 'tools/build-guest-image.py'
BUILD_TIMEOUT_S = 900.0


class ImageError(Exception):
    """The image cannot be built."""


@dataclasses.dataclass(frozen=True)
class GuestImage:
    """A built image: its folder, the two files and the build's manifest."""

    folder: pathlib.Path
    manifest: Dict[str, Any]

    @property
    def kernel(self) -> pathlib.Path:
        return self.folder / 'vmlinuz'

    @property
    def initrd(self) -> pathlib.Path:
        return self.folder / 'initrd.img'


def find_tool(source: Optional[str] = None) -> pathlib.Path:
    """The build script: under ``source``, $HA_GUEST_SOURCE, the current folder or this checkout."""
    here = pathlib.Path(__file__).resolve().parents[2]
    for root in (source, os.environ.get('HA_GUEST_SOURCE'), os.getcwd(), str(here)):
        if root and (pathlib.Path(root) / TOOL).is_file():
            return pathlib.Path(root) / TOOL
    raise ImageError('%s not found: run from an ha_guest checkout or set HA_GUEST_SOURCE' % TOOL)


def build_image(output: Optional[str] = IMAGE_DIR, source: Optional[str] = None,
                timeout: float = BUILD_TIMEOUT_S) -> GuestImage:
    """Build (or take the cached) image, copied into ``output`` (None: use the cache folder itself)."""
    cmd = [sys.executable, str(find_tool(source)), '--print-path'] + (['--output', output] if output else [])
    try:
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ImageError('building the guest image took over %gs: %s' % (timeout, exc)) from exc
    if result.returncode != 0:
        raise ImageError('cannot build the guest image (%s; apt-get needs root the first time):\n%s'
                         % (' '.join(cmd), result.stderr[-3000:]))
    folder = pathlib.Path(result.stdout.strip().splitlines()[-1])
    manifest = json.loads((folder / 'manifest.json').read_text(encoding='utf-8'))
    return GuestImage(folder, manifest)


def domain_xml(name: str, domain_uuid: str, image: GuestImage, memory_mib: int = 256,
               cmdline: str = KERNEL_CMDLINE, channel: str = CHANNEL_NAME) -> str:
    """A TCG domain booting the image, shaped like Nova's: kernel/initrd, pty serial console, our channel.

    Another ``channel`` name (passed to the guest as ``ha_guest.channel=``) keeps the domain away from
    compute agents with libvirt discovery on the same libvirtd.
    """
    if channel != CHANNEL_NAME:
        cmdline += ' ha_guest.channel=' + channel
    return ("<domain type='qemu'><name>%s</name><uuid>%s</uuid><memory unit='MiB'>%d</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type><kernel>%s</kernel><initrd>%s</initrd>"
            "<cmdline>%s</cmdline></os>"
            "<on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>"
            "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
            "<serial type='pty'><target port='0'/></serial>"
            "<console type='pty'><target type='serial' port='0'/></console>"
            "<channel type='unix'><source mode='bind' path='%s'/><target type='virtio' name='%s'/></channel>"
            "</devices></domain>"
            % (name, domain_uuid, memory_mib, image.kernel, image.initrd, cmdline, host_socket_path(name),
               channel))
