"""LibvirtDiscovery against a real libvirtd and QEMU (qemu:///system; tools/ensure-libvirt.sh starts them).

The domains are tiny TCG guests without a disk: QEMU starts, its BIOS finds
nothing to boot and idles. That is enough for libvirt to create the channel
socket and emit real lifecycle events.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
from typing import Any, List, Optional, Sequence

from ha_guest.compute.discovery import base as discovery_base
from ha_guest.compute.discovery import libvirt_domain
from ha_guest.testing import wait_for
from tests.libvirt import base


class LibvirtdTestCase(base.DiscoveryTestCase):
    """Defines domains on qemu:///system; they are destroyed and undefined at cleanup."""

    URI = base.SYSTEM_URI

    def setUp(self) -> None:
        super().setUp()
        try:
            self.conn = self.libvirt.open(base.SYSTEM_URI)
        except self.libvirt.libvirtError as exc:
            raise AssertionError("libvirtd does not answer on %s (%s): run `bash tools/ensure-libvirt.sh` as root "
                                 "(tox -e libvirt does)" % (base.SYSTEM_URI, exc)) from exc
        self.addCleanup(self.conn.close)

    def define(self, channels: Sequence[str], features: Optional[str] = None) -> Any:
        name, domain_uuid = self.new_name()
        dom = self.conn.defineXML(base.qemu_domain_xml(name, domain_uuid, channels, features))
        self.addCleanup(self._remove, dom)
        return dom

    def _remove(self, dom: Any) -> None:
        for action in (dom.destroy, dom.undefine):
            try:
                action()
            except self.libvirt.libvirtError:
                pass

    def assert_listening_socket(self, path: str) -> None:
        self.assertTrue(stat.S_ISSOCK(os.stat(path).st_mode), path)
        # QEMU listens there: the compute agent can connect as a client.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5.0)
            client.connect(path)

    def qemu_pid(self, dom: Any) -> int:
        with open("/run/libvirt/qemu/%s.pid" % dom.name(), encoding="ascii") as handle:
            return int(handle.read().strip())


class TestLibvirtd(LibvirtdTestCase):
    """Real domains, real events."""

    def test_nova_style_channel_lifecycle(self) -> None:
        self.start_driver()
        name, domain_uuid = self.new_name()
        # The path Nova gives the channel (the QEMU guest agent's pattern).
        path = "/var/lib/libvirt/qemu/%s.%s.sock" % (base.CHANNEL, name)
        dom = self.conn.defineXML(base.qemu_domain_xml(name, domain_uuid, [base.channel_xml(path=path)]))
        self.addCleanup(self._remove, dom)
        dom.create()
        # Depending on when its events are handled the start is seen running or as starting, then running.
        self.listener.wait_view(domain_uuid, (path, None))
        self.assert_listening_socket(path)

        count = len(self.listener.of(domain_uuid))
        dom.suspend()
        self.assertEqual(("suspended", discovery_base.PAUSED), self.listener.wait_for(domain_uuid, count + 1)[-1])
        dom.resume()
        self.assertEqual(("resumed",), self.listener.wait_for(domain_uuid, count + 2)[-1])

        # A reset (the guest rebooting, or `virsh reset`) starts a new lifetime of the channel.
        count += 2
        dom.reset(0)
        calls = self.listener.wait_for(domain_uuid, count + 2)
        self.listener.wait_view(domain_uuid, (path, None))
        self.assertEqual([("removed",), ("added", path, False)], calls[count:count + 2])
        time.sleep(0.3)  # SeaBIOS resets twice more at once: the same reset, no more calls
        self.assertEqual(count + 2, len(self.listener.of(domain_uuid)))

        dom.destroy()
        self.assertEqual(("removed",), self.listener.wait_view(domain_uuid, None)[-1])

    def test_features_of_a_real_domain(self) -> None:
        self.start_driver()
        dom = self.define([base.channel_xml()], features=base.features_xml(False, True))
        uuid = dom.UUIDString()
        dom.create()
        calls = self.listener.wait_for(uuid, 1)
        path = calls[0][1]
        self.listener.wait_view(uuid, (path, None))
        sgm_only = discovery_base.Features(heartbeat=False, server_group_messaging=True)
        self.assertEqual({sgm_only}, set(self.listener.features_of(uuid)))
        self.assert_listening_socket(path)

        # Changed live (virsh metadata --live): reported again, same socket.
        count = len(self.listener.of(uuid))
        lv = self.libvirt
        dom.setMetadata(lv.VIR_DOMAIN_METADATA_ELEMENT, '<features heartbeat="true" server_group_messaging="true"/>',
                        "ha_guest", base.FEATURES_NS, lv.VIR_DOMAIN_AFFECT_LIVE)
        calls = self.listener.wait_for(uuid, count + 1)
        self.assertEqual(("added", path, False, discovery_base.Features(True, True)),
                         self.listener.of(uuid, features=True)[count])

        # Redefined from another flavor while running (Nova's resize stops it first): the running
        # domain keeps its live XML until it is started again.
        count = len(self.listener.of(uuid))
        redefined = base.qemu_domain_xml(dom.name(), uuid, [base.channel_xml()], base.features_xml(True, False))
        self.conn.defineXML(redefined)
        dom.destroy()
        dom.create()
        # What the agent hears in between depends on timing (the redefinition's own event, the stop as a
        # removal or as a stopped domain); what matters is the new channel of the started domain.
        def new_channel() -> Optional[str]:
            paths = [call[1] for call in self.listener.of(uuid)[count:] if call[0] == "added" and call[1] != path]
            return paths[-1] if paths else None

        new_path = wait_for(new_channel, base.TIMEOUT, message="the channel of the domain started again")
        self.listener.wait_view(uuid, (new_path, None))
        self.assertEqual(discovery_base.LEGACY_FEATURES, self.listener.features_of(uuid)[-1])

    def test_killed_qemu_stays_watched_until_undefined(self) -> None:
        dom = self.define([base.channel_xml()])  # libvirt chooses the socket path
        dom.create()
        self.start_driver()
        uuid = dom.UUIDString()
        calls = self.listener.wait_for(uuid, 1)
        self.assertEqual("added", calls[0][0])
        path = calls[0][1]
        self.assertTrue(path.startswith("/var/lib/libvirt/qemu/channel/target/"), path)
        self.assert_listening_socket(path)
        dom.suspend()
        self.listener.wait_view(uuid, (path, discovery_base.PAUSED))

        # QEMU dies under a paused domain: not an orderly end, so the channel stays and is watched
        # again (the compute agent then counts misses: a fault).
        os.kill(self.qemu_pid(dom), signal.SIGKILL)
        wait_for(lambda: dom.state()[0] == libvirt_domain.DomainState.SHUTOFF, base.TIMEOUT,
                 message="libvirt to see QEMU gone")
        self.assertEqual([libvirt_domain.DomainState.SHUTOFF, libvirt_domain.ShutoffReason.CRASHED], dom.state())
        calls = self.listener.wait_view(uuid, (path, None))
        self.assertEqual(("resumed",), calls[-1])

        dom.undefine()
        self.assertEqual(("removed",), self.listener.wait_view(uuid, None)[-1])

    def test_reconnects_when_libvirtd_drops_the_connection(self) -> None:
        dom = self.define([base.channel_xml()])
        dom.create()
        driver = self.start_driver()
        uuid = dom.UUIDString()
        self.listener.wait_for(uuid, 1)
        clients = self.disconnect_read_only_clients()
        self.assertEqual(1, len(clients), "the driver's read-only connection")
        wait_for(lambda: driver.connections >= 2, base.TIMEOUT, message="the driver to reconnect")
        # Listing the domains again changed nothing.
        self.assertEqual(1, len(self.listener.of(uuid)))
        # Events flow on the new connection.
        dom.destroy()
        self.assertEqual(("removed",), self.listener.wait_for(uuid, 2)[-1])

    def disconnect_read_only_clients(self) -> List[str]:
        """Make libvirtd drop this process's read-only connections (virt-admin); return their ids."""
        def virt_admin(*args: str) -> str:
            try:
                result = subprocess.run(("virt-admin",) + args, capture_output=True, text=True, timeout=10,
                                        check=True)
            except (OSError, subprocess.SubprocessError) as exc:
                raise AssertionError("virt-admin %s failed (it comes with libvirt-clients): %s"
                                     % (" ".join(args), exc)) from exc
            return result.stdout

        dropped = []
        for line in virt_admin("client-list", "libvirtd").splitlines()[2:]:
            fields = line.split()
            if not fields:
                continue
            try:
                text = virt_admin("client-info", "libvirtd", fields[0])
            except AssertionError:
                continue  # another test's connection, closed since the listing
            info = {key.strip(): value.strip() for key, _, value in
                    (part.partition(":") for part in text.splitlines() if ":" in part)}
            if info.get("readonly") == "yes" and info.get("unix_process_id") == str(os.getpid()):
                virt_admin("client-disconnect", "libvirtd", fields[0])
                dropped.append(fields[0])
        return dropped
