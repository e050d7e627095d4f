"""Helpers of the libvirt discovery tests: a recording listener, domain XML, a driver under test.

These tests run against real libvirt (tox -e libvirt): libvirt's own test
driver (test:///default, inside libvirt-python's client library) and a real
libvirtd with QEMU. Nothing is skipped: a missing piece fails with the fix.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, List, Optional, Sequence, Tuple

import testtools
from oslo_config import cfg

from ha_guest.compute.discovery import base as discovery_base
from ha_guest.conf import compute as compute_conf
from ha_guest.testing import wait_for

#: Bound of any single wait; a healthy run needs a fraction of it.
TIMEOUT = 10.0
CHANNEL = "org.openstack.ha_guest.0"
TEST_URI = "test:///default"
SYSTEM_URI = "qemu:///system"
FEATURES_NS = "http://openstack.org/xmlns/libvirt/ha_guest/1.0"

Call = Tuple[Any, ...]


def libvirt_module() -> Any:
    """Return libvirt-python with the driver's event loop running; fail with the fix if it is missing."""
    from ha_guest.compute.discovery import libvirt as driver_module

    try:
        return driver_module.event_loop()
    except RuntimeError as exc:
        raise AssertionError("%s. Run these tests with `tox -e libvirt`, which installs it." % exc) from exc


class RecordingListener:
    """A discovery listener that records every call, thread-safely."""

    def __init__(self) -> None:
        self.calls: List[Call] = []
        self._cond = threading.Condition()

    def _record(self, *call: Any) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def channel_added(self, instance_uuid: str, socket_path: str, suspended: bool = False,
                      features: discovery_base.Features = discovery_base.LEGACY_FEATURES) -> None:
        self._record("added", instance_uuid, socket_path, suspended, features)

    def channel_removed(self, instance_uuid: str) -> None:
        self._record("removed", instance_uuid)

    def instance_suspended(self, instance_uuid: str, reason: str) -> None:
        self._record("suspended", instance_uuid, reason)

    def instance_resumed(self, instance_uuid: str) -> None:
        self._record("resumed", instance_uuid)

    def of(self, instance_uuid: str, features: bool = False) -> List[Call]:
        """The calls about one instance, without its UUID (and without the features, unless asked)."""
        with self._cond:
            return [(call[0],) + (call[2:] if features or call[0] != "added" else call[2:-1])
                    for call in self.calls if call[1] == instance_uuid]

    def features_of(self, instance_uuid: str) -> List[discovery_base.Features]:
        """The features of each channel_added about one instance, in order."""
        return [call[-1] for call in self.of(instance_uuid, features=True) if call[0] == "added"]

    def wait_for(self, instance_uuid: str, count: int, timeout: float = TIMEOUT) -> List[Call]:
        """Wait until at least ``count`` calls about the instance arrived; return them all."""
        def described() -> str:
            return "%d call(s) about %s; got %r" % (count, instance_uuid, self.of(instance_uuid))

        wait_for(lambda: len(self.of(instance_uuid)) >= count, timeout, message=described, condition=self._cond)
        return self.of(instance_uuid)

    def view(self, instance_uuid: str) -> Optional[Tuple[str, Optional[str]]]:
        """What the calls so far say about the instance: None (no channel) or (socket path, suspension reason)."""
        current: Optional[Tuple[str, Optional[str]]] = None
        for call in self.of(instance_uuid):
            if call[0] == "added":
                current = (call[1], "suspended" if call[2] else None)
            elif call[0] == "removed":
                current = None
            elif current is not None and call[0] == "suspended":
                current = (current[0], call[1])
            elif current is not None and call[0] == "resumed":
                current = (current[0], None)
        return current

    def wait_view(self, instance_uuid: str, expected: Optional[Tuple[str, Optional[str]]],
                  timeout: float = TIMEOUT) -> List[Call]:
        """Wait until ``view`` gives ``expected``; return the calls about the instance."""
        wait_for(lambda: self.view(instance_uuid) == expected, timeout,
                 message=lambda: "%s to be %r (calls: %r)" % (instance_uuid, expected, self.of(instance_uuid)))
        return self.of(instance_uuid)


def channel_xml(name: str = CHANNEL, path: Optional[str] = None, mode: str = "bind",
                chardev: str = "unix", target_type: str = "virtio") -> str:
    """A ``<channel>`` element; no path lets libvirt choose one (QEMU domains)."""
    source = "<source mode='%s'%s/>" % (mode, " path='%s'" % path if path else "")
    return "<channel type='%s'>%s<target type='%s' name='%s'/></channel>" % (chardev, source, target_type, name)


def features_xml(heartbeat: bool, server_group_messaging: bool) -> str:
    """Our features element, as the Nova driver writes it."""
    return ('<ha_guest:features xmlns:ha_guest="%s" heartbeat="%s" server_group_messaging="%s"/>'
            % (FEATURES_NS, str(heartbeat).lower(), str(server_group_messaging).lower()))


def _metadata(features: Optional[str]) -> str:
    return "<metadata>%s</metadata>" % features if features else ""


def mock_domain_xml(name: str, domain_uuid: str, channels: Sequence[str] = (), features: Optional[str] = None) -> str:
    """A domain of libvirt's test driver (``features``: an element for its <metadata>)."""
    return ("<domain type='test'><name>%s</name><uuid>%s</uuid>%s<memory>8192</memory>"
            "<os><type>hvm</type></os><devices>%s</devices></domain>"
            % (name, domain_uuid, _metadata(features), "".join(channels)))


def qemu_domain_xml(name: str, domain_uuid: str, channels: Sequence[str] = (), features: Optional[str] = None) -> str:
    """A tiny TCG domain with no disk: QEMU starts and its BIOS idles, finding nothing to boot."""
    return ("<domain type='qemu'><name>%s</name><uuid>%s</uuid>%s<memory unit='MiB'>32</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/>"
            # SeaBIOS would reset the guest every 60 s after finding no boot device.
            "<bios rebootTimeout='-1'/></os>"
            "<on_reboot>restart</on_reboot><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
            "%s</devices></domain>" % (name, domain_uuid, _metadata(features), "".join(channels)))


class DiscoveryTestCase(testtools.TestCase):
    """Runs a LibvirtDiscovery on ``URI`` with a recording listener."""

    URI = TEST_URI

    def setUp(self) -> None:
        super().setUp()
        self.libvirt = libvirt_module()
        self.listener = RecordingListener()

    def make_conf(self, **overrides: Any) -> cfg.ConfigOpts:
        conf = cfg.ConfigOpts()
        compute_conf.register_opts(conf)
        conf([], project="ha_guest", default_config_files=[], default_config_dirs=[])
        conf.set_override("libvirt_uri", self.URI, group="compute")
        for key, value in overrides.items():
            conf.set_override(key, value, group="compute")
        return conf

    def start_driver(self, **overrides: Any) -> Any:
        """Start a driver (stopped at cleanup) and wait until it is connected."""
        from ha_guest.compute.discovery.libvirt import LibvirtDiscovery

        driver = LibvirtDiscovery(self.make_conf(**overrides), self.listener)
        driver.start()
        self.addCleanup(driver.stop)
        wait_for(lambda: driver.connections >= 1, TIMEOUT, message="the driver to connect to %s" % self.URI)
        return driver

    @staticmethod
    def new_name() -> Tuple[str, str]:
        """A unique (domain name, UUID)."""
        domain_uuid = str(uuid.uuid4())
        return "ha-guest-test-%s" % domain_uuid[:8], domain_uuid
