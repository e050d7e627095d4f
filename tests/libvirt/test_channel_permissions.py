"""Who may connect to the channel sockets QEMU creates: QEMU's group, as the units and devstack set it up.

An unprivileged ha-guest-compute (etc/systemd/ha-guest-compute.service,
devstack's HA_GUEST_COMPUTE_USER) connects as a member of the group owning
/var/lib/libvirt/qemu; without it the connection is refused. Checked with a
throw-away identity (user nobody) through setpriv, for both paths a channel
socket can have.
"""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import sys

from tests.libvirt import base
from tests.libvirt.test_libvirtd import LibvirtdTestCase

QEMU_DIR = "/var/lib/libvirt/qemu"
PROBE = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1]); print('ok')"


class TestChannelPermissions(LibvirtdTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.setpriv = shutil.which("setpriv")
        self.assertIsNotNone(self.setpriv, "setpriv (util-linux) is needed to connect as another user")
        self.assertEqual(0, os.geteuid(), "root is needed to connect as another user")
        # What devstack's plugin and the docs call QEMU's group.
        self.qemu_group = grp.getgrgid(os.stat(QEMU_DIR).st_gid).gr_name

    def connect_as_nobody(self, path: str, groups: str) -> str:
        """Connect to ``path`` as user nobody with supplementary ``groups``; return what the probe said."""
        option = "--groups=%s" % groups if groups else "--clear-groups"
        proc = subprocess.run([str(self.setpriv), "--reuid=nobody", "--regid=nogroup", option,
                               sys.executable, "-c", PROBE, path], capture_output=True, text=True, timeout=30)
        return proc.stdout.strip() or proc.stderr.strip().splitlines()[-1]

    def socket_of(self, dom: object) -> str:
        xml = dom.XMLDesc()  # type: ignore[attr-defined]
        return xml.split("<target type='virtio' name='%s'" % base.CHANNEL)[0].rsplit("path='", 1)[1].split("'")[0]

    def check(self, path: str) -> None:
        mode = os.stat(path)
        self.assertTrue(stat.S_ISSOCK(mode.st_mode), path)
        # The socket is group-writable for QEMU's group, every folder above it group-searchable.
        self.assertEqual(self.qemu_group, grp.getgrgid(mode.st_gid).gr_name)
        self.assertTrue(mode.st_mode & stat.S_IWGRP, oct(mode.st_mode))
        self.assertFalse(mode.st_mode & stat.S_IWOTH, oct(mode.st_mode))
        self.assertEqual("ok", self.connect_as_nobody(path, self.qemu_group))
        self.assertIn("PermissionError", self.connect_as_nobody(path, ""))

    def test_nova_style_path(self) -> None:
        name, domain_uuid = self.new_name()
        path = "%s/%s.%s.sock" % (QEMU_DIR, base.CHANNEL, name)
        dom = self.conn.defineXML(base.qemu_domain_xml(name, domain_uuid, [base.channel_xml(path=path)]))
        self.addCleanup(self._remove, dom)
        dom.create()
        self.check(path)

    def test_libvirts_own_path(self) -> None:
        dom = self.define([base.channel_xml()])
        dom.create()
        path = self.socket_of(dom)
        self.assertTrue(path.startswith("%s/channel/target/domain-" % QEMU_DIR), path)
        self.check(path)
