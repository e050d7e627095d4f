"""LibvirtDiscovery against libvirt's own test driver (a mock hypervisor inside libvirt-python's library)."""

from __future__ import annotations

import os
import time
from typing import Any, Optional, Sequence

import fixtures
import stevedore

from ha_guest.compute.discovery import base as discovery_base
from ha_guest.compute.discovery import libvirt as libvirt_discovery
from ha_guest.compute.discovery import libvirt_domain
from tests.libvirt import base


class TestDriverTestCase(base.DiscoveryTestCase):
    """Tests that define and run domains on test:///default through a read-write connection of their own."""

    def setUp(self) -> None:
        super().setUp()
        # test:///default is one mock host per process, shared by every connection open to it.
        self.conn = self.libvirt.open(base.TEST_URI)
        self.addCleanup(self.conn.close)

    def define(self, channels: Sequence[str] = (), start: bool = True, features: Optional[str] = None) -> Any:
        """Define (and start) a domain; it is destroyed and undefined at cleanup."""
        name, domain_uuid = self.new_name()
        dom = self.conn.defineXML(base.mock_domain_xml(name, domain_uuid, channels, features))
        self.addCleanup(self._remove, dom)
        if start:
            dom.create()
        return dom

    def _remove(self, dom: Any) -> None:
        for action in (dom.destroy, dom.undefine):
            try:
                action()
            except self.libvirt.libvirtError:
                pass


class TestLifecycle(TestDriverTestCase):
    """Domain lifecycle events become listener calls."""

    def test_running_domain_found_on_start(self) -> None:
        dom = self.define([base.channel_xml(path="/run/test/running.sock")])
        self.start_driver()
        uuid = dom.UUIDString()
        self.assertEqual([("added", "/run/test/running.sock", False)], self.listener.wait_for(uuid, 1))
        # test:///default's own domain "test" runs without our channel.
        self.assertEqual([], self.listener.of(self.conn.lookupByName("test").UUIDString()))

    def test_paused_domain_found_on_start(self) -> None:
        dom = self.define([base.channel_xml(path="/run/test/paused.sock")])
        dom.suspend()
        self.start_driver()
        self.assertEqual([("added", "/run/test/paused.sock", True), ("suspended", discovery_base.PAUSED)],
                         self.listener.wait_for(dom.UUIDString(), 2))

    def test_start_pause_resume_destroy(self) -> None:
        self.start_driver()
        dom = self.define([base.channel_xml(path="/run/test/a.sock")], start=False)
        uuid = dom.UUIDString()
        dom.create()
        self.assertEqual([("added", "/run/test/a.sock", False)], self.listener.wait_for(uuid, 1))
        dom.suspend()
        self.assertEqual(("suspended", discovery_base.PAUSED), self.listener.wait_for(uuid, 2)[-1])
        dom.resume()
        self.assertEqual(("resumed",), self.listener.wait_for(uuid, 3)[-1])
        dom.destroy()
        self.assertEqual(("removed",), self.listener.wait_for(uuid, 4)[-1])
        dom.create()
        self.assertEqual(("added", "/run/test/a.sock", False), self.listener.wait_for(uuid, 5)[-1])
        dom.shutdown()
        self.assertEqual(("removed",), self.listener.wait_for(uuid, 6)[-1])
        self.assertEqual(6, len(self.listener.of(uuid)))

    def test_managed_save_removes_and_restore_adds(self) -> None:
        # Nova's suspend: the domain's memory goes to disk and QEMU ends; resume starts it again.
        self.start_driver()
        dom = self.define([base.channel_xml(path="/run/test/saved.sock")])
        uuid = dom.UUIDString()
        self.listener.wait_for(uuid, 1)
        dom.managedSave(0)
        self.assertEqual(("removed",), self.listener.wait_for(uuid, 2)[-1])
        dom.create()
        self.assertEqual([("added", "/run/test/saved.sock", False), ("removed",),
                          ("added", "/run/test/saved.sock", False)], self.listener.wait_for(uuid, 3))

    def test_undefined_running_domain_stays_until_it_stops(self) -> None:
        self.start_driver()
        dom = self.define([base.channel_xml(path="/run/test/transient.sock")])
        uuid = dom.UUIDString()
        self.listener.wait_for(uuid, 1)
        dom.undefine()  # it runs on as a transient domain
        dom.destroy()
        self.assertEqual([("added", "/run/test/transient.sock", False), ("removed",)],
                         self.listener.wait_for(uuid, 2))

    def test_domains_without_our_channel_are_ignored(self) -> None:
        self.start_driver()
        ignored = [
            self.define([]),
            self.define([base.channel_xml(name="org.qemu.guest_agent.0", path="/run/test/qga.sock")]),
            self.define([base.channel_xml(path="/run/test/connect.sock", mode="connect")]),
            self.define([base.channel_xml(chardev="pty")]),
        ]
        # Events are handled in order: once the marker's calls are in, the others' have been handled.
        marker = self.define([base.channel_xml(path="/run/test/marker.sock")])
        self.listener.wait_for(marker.UUIDString(), 1)
        for dom in ignored:
            dom.suspend()
            dom.destroy()
        marker.destroy()
        self.listener.wait_for(marker.UUIDString(), 2)
        self.assertEqual([marker.UUIDString()] * 2, [call[1] for call in self.listener.calls])

    def test_channel_name_option(self) -> None:
        self.start_driver(channel_name="org.example.other.0")
        dom = self.define([base.channel_xml(path="/run/test/ours.sock"),
                           base.channel_xml(name="org.example.other.0", path="/run/test/other.sock")])
        self.assertEqual([("added", "/run/test/other.sock", False)], self.listener.wait_for(dom.UUIDString(), 1))

    def test_stop_ends_calls(self) -> None:
        driver = self.start_driver()
        driver.stop()
        driver.stop()
        self.define([base.channel_xml(path="/run/test/late.sock")])
        time.sleep(0.3)
        self.assertEqual([], self.listener.calls)


HEARTBEAT_ONLY = discovery_base.LEGACY_FEATURES
SGM_ONLY = discovery_base.Features(heartbeat=False, server_group_messaging=True)
BOTH = discovery_base.Features(heartbeat=True, server_group_messaging=True)


class TestFeatures(TestDriverTestCase):
    """The features in a domain's metadata reach the listener, and changes to them are reported again."""

    def set_features(self, dom: Any, heartbeat: Optional[bool], server_group_messaging: bool = False) -> None:
        """Set (None: remove) our metadata element of the running domain, as `virsh metadata --live` does."""
        lv = self.libvirt
        if heartbeat is None:
            dom.setMetadata(lv.VIR_DOMAIN_METADATA_ELEMENT, None, None, base.FEATURES_NS, lv.VIR_DOMAIN_AFFECT_LIVE)
            return
        element = '<features heartbeat="%s" server_group_messaging="%s"/>' % (
            str(heartbeat).lower(), str(server_group_messaging).lower())
        dom.setMetadata(lv.VIR_DOMAIN_METADATA_ELEMENT, element, "ha_guest", base.FEATURES_NS,
                        lv.VIR_DOMAIN_AFFECT_LIVE)

    def test_features_from_metadata(self) -> None:
        sgm = self.define([base.channel_xml(path="/run/test/sgm.sock")], features=base.features_xml(False, True))
        both = self.define([base.channel_xml(path="/run/test/both.sock")], features=base.features_xml(True, True))
        legacy = self.define([base.channel_xml(path="/run/test/legacy.sock")])
        self.start_driver()
        self.listener.wait_for(sgm.UUIDString(), 1)
        self.assertEqual([("added", "/run/test/sgm.sock", False, SGM_ONLY)], self.listener.of(sgm.UUIDString(), True))
        self.listener.wait_for(both.UUIDString(), 1)
        self.listener.wait_for(legacy.UUIDString(), 1)
        self.assertEqual([BOTH], self.listener.features_of(both.UUIDString()))
        self.assertEqual([HEARTBEAT_ONLY], self.listener.features_of(legacy.UUIDString()))

    def test_started_later(self) -> None:
        self.start_driver()
        dom = self.define([base.channel_xml(path="/run/test/later.sock")], features=base.features_xml(False, True))
        self.listener.wait_for(dom.UUIDString(), 1)
        self.assertEqual([("added", "/run/test/later.sock", False, SGM_ONLY)], self.listener.of(dom.UUIDString(), True))

    def test_live_change_is_reported_again(self) -> None:
        self.start_driver()
        dom = self.define([base.channel_xml(path="/run/test/live.sock")])
        uuid = dom.UUIDString()
        self.listener.wait_for(uuid, 1)
        self.set_features(dom, True, True)
        self.listener.wait_for(uuid, 2)
        self.assertEqual(("added", "/run/test/live.sock", False, BOTH), self.listener.of(uuid, True)[-1])
        # Gone again: a channel without metadata is heartbeat-only.
        self.set_features(dom, None)
        self.listener.wait_for(uuid, 3)
        self.assertEqual([HEARTBEAT_ONLY, BOTH, HEARTBEAT_ONLY], self.listener.features_of(uuid))
        # Metadata of another namespace (Nova's own, rewritten on interface attach) changes nothing.
        dom.setMetadata(self.libvirt.VIR_DOMAIN_METADATA_ELEMENT, "<instance/>", "nova",
                        "http://openstack.org/xmlns/libvirt/nova/1.1", self.libvirt.VIR_DOMAIN_AFFECT_LIVE)
        marker = self.define([base.channel_xml(path="/run/test/marker.sock")])
        self.listener.wait_for(marker.UUIDString(), 1)
        self.assertEqual(3, len(self.listener.of(uuid)))

    def test_change_while_paused_keeps_it_suspended(self) -> None:
        self.start_driver()
        dom = self.define([base.channel_xml(path="/run/test/paused.sock")])
        uuid = dom.UUIDString()
        self.listener.wait_for(uuid, 1)
        dom.suspend()
        self.listener.wait_for(uuid, 2)
        self.set_features(dom, False, True)
        self.listener.wait_for(uuid, 3)
        self.assertEqual(("added", "/run/test/paused.sock", True, SGM_ONLY), self.listener.of(uuid, True)[-1])
        self.assertEqual([("added", "/run/test/paused.sock", False), ("suspended", discovery_base.PAUSED),
                          ("added", "/run/test/paused.sock", True)], self.listener.of(uuid))

    def test_redefined_with_other_features(self) -> None:
        # A resize: Nova stops the domain, defines it from the new flavor and starts it again.
        self.start_driver()
        dom = self.define([base.channel_xml(path="/run/test/resized.sock")], features=base.features_xml(True, False))
        uuid = dom.UUIDString()
        self.listener.wait_for(uuid, 1)
        dom.destroy()
        self.listener.wait_for(uuid, 2)
        channel = base.channel_xml(path="/run/test/resized.sock")
        dom = self.conn.defineXML(base.mock_domain_xml(dom.name(), uuid, [channel], base.features_xml(True, True)))
        dom.create()
        self.listener.wait_for(uuid, 3)
        self.assertEqual([("added", "/run/test/resized.sock", False, HEARTBEAT_ONLY), ("removed",),
                          ("added", "/run/test/resized.sock", False, BOTH)], self.listener.of(uuid, True))

    def test_bad_values_are_heartbeat_only(self) -> None:
        self.start_driver()
        bad = '<ha_guest:features xmlns:ha_guest="%s" heartbeat="sometimes"/>' % base.FEATURES_NS
        dom = self.define([base.channel_xml(path="/run/test/bad.sock")], features=bad)
        self.listener.wait_for(dom.UUIDString(), 1)
        self.assertEqual([("added", "/run/test/bad.sock", False, HEARTBEAT_ONLY)],
                         self.listener.of(dom.UUIDString(), True))


class FlakyListener(base.RecordingListener):
    """Records, then raises on its first call."""

    failed = False

    def _record(self, *call: Any) -> None:
        super()._record(*call)
        if not self.failed:
            self.failed = True
            raise RuntimeError("listener bug")


class TestRobustness(TestDriverTestCase):
    """The driver survives its listener's errors and an unreachable libvirt."""

    def test_listener_error_does_not_stop_discovery(self) -> None:
        self.listener = FlakyListener()
        self.start_driver()
        first = self.define([base.channel_xml(path="/run/test/first.sock")])
        second = self.define([base.channel_xml(path="/run/test/second.sock")])
        self.listener.wait_for(first.UUIDString(), 1)
        self.assertEqual([("added", "/run/test/second.sock", False)], self.listener.wait_for(second.UUIDString(), 1))

    def test_unreachable_libvirt_retries_until_stopped(self) -> None:
        conf = self.make_conf(libvirt_uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock")
        driver = libvirt_discovery.LibvirtDiscovery(conf, self.listener)
        driver.start()
        time.sleep(0.3)
        self.assertEqual(0, driver.connections)
        started = time.monotonic()
        driver.stop()
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertEqual([], self.listener.calls)

    def test_loaded_through_its_entry_point(self) -> None:
        manager = stevedore.DriverManager("ha_guest.compute.discovery", "libvirt", invoke_on_load=True,
                                          invoke_args=(self.make_conf(), self.listener))
        self.assertIsInstance(manager.driver, libvirt_discovery.LibvirtDiscovery)
        self.assertIsInstance(manager.driver, discovery_base.DiscoveryDriver)


NODE_XML = """<node>
  %s
</node>"""
RUNSTATE = "<test:runstate xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>%d</test:runstate>"


class TestStatesOnStart(base.DiscoveryTestCase):
    """Domain states the test driver can only load from a node file (crashed, paused, shut off)."""

    def test_states_found_on_start(self) -> None:
        domains = {}
        xml = []
        for name, state in (("crashed", libvirt_domain.DomainState.CRASHED),
                            ("paused", libvirt_domain.DomainState.PAUSED),
                            ("shutoff", libvirt_domain.DomainState.SHUTOFF),
                            ("running", libvirt_domain.DomainState.RUNNING)):
            domain_name, domain_uuid = self.new_name()
            domains[name] = domain_uuid
            domain = base.mock_domain_xml(domain_name, domain_uuid, [base.channel_xml(path="/run/test/%s.sock" % name)])
            xml.append(domain.replace("</domain>", RUNSTATE % state + "</domain>"))
        folder = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(folder, "node.xml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(NODE_XML % "\n".join(xml))
        self.start_driver(libvirt_uri="test://" + path)
        self.listener.wait_for(domains["running"], 1)
        self.listener.wait_for(domains["paused"], 2)
        self.listener.wait_for(domains["crashed"], 1)
        self.assertEqual([("added", "/run/test/running.sock", False)], self.listener.of(domains["running"]))
        self.assertEqual([("added", "/run/test/paused.sock", True), ("suspended", discovery_base.PAUSED)],
                         self.listener.of(domains["paused"]))
        # A crashed domain stays watched: if its guest was registered, its silence is a fault.
        self.assertEqual([("added", "/run/test/crashed.sock", False)], self.listener.of(domains["crashed"]))
        self.assertEqual([], self.listener.of(domains["shutoff"]))


class TestAbiNumbers(base.DiscoveryTestCase):
    """libvirt_domain's copies of libvirt's numbers match libvirt-python's."""

    def test_numbers(self) -> None:
        for enum_class, prefix in ((libvirt_domain.DomainState, "VIR_DOMAIN_"),
                                   (libvirt_domain.PausedReason, "VIR_DOMAIN_PAUSED_"),
                                   (libvirt_domain.ShutoffReason, "VIR_DOMAIN_SHUTOFF_"),
                                   (libvirt_domain.LifecycleEvent, "VIR_DOMAIN_EVENT_")):
            for member in enum_class:
                value = getattr(self.libvirt, prefix + member.name, None)
                if value is None and member.value > 8:
                    continue  # newer than the libvirt this binding was built against (API_ERROR: 9.2)
                self.assertEqual(value, member.value, prefix + member.name)
