"""The recovery sinks' plumbing: API connection from [nova_api], timeouts, registry hook, raised_by, entry points."""

from __future__ import annotations

import socket
import time
from typing import Any

import testtools
from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as sdk_exceptions

from ha_guest.controller.handler import FaultHandler
from ha_guest.controller.manager import load_sinks
from ha_guest.controller.registry import FaultRegistry
from ha_guest.sinks import base, openstack_client
from ha_guest.sinks.log import LogSink
from ha_guest.sinks.masakari import MasakariSink, vm_notification
from ha_guest.sinks.recovery import RecoverySink, iso_utc
from ha_guest.testing.openstack_stub import OpenStackStub, configure_nova_api
from tests.messaging import ConfFixture
from tests.unit.controller.test_registry import fault, item, report


class TestConnect(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(ConfFixture()).conf

    def test_defaults(self) -> None:
        self.assertTrue(self.conf.recovery.enabled)
        self.assertEqual(5, self.conf.nova_api.timeout)
        self.assertEqual((2.0, 5.0), openstack_client.timeouts(self.conf))
        self.assertEqual(['internal', 'public'], self.conf.nova_api.valid_interfaces)

    def test_no_credentials(self) -> None:
        exc = self.assertRaises(openstack_client.ApiConfigError, openstack_client.connect, self.conf)
        self.assertIn('[nova_api] auth_type is not set', str(exc))

    def test_connection_from_conf(self) -> None:
        stub = OpenStackStub()  # not started: connect() makes no request
        configure_nova_api(self.conf, stub, connect_timeout=0.5, timeout=3)
        conn = openstack_client.connect(self.conf)
        self.addCleanup(conn.close)
        requests_session = conn.session.session
        assert isinstance(requests_session, openstack_client.TimeoutSession)
        self.assertEqual((0.5, 3.0), requests_session.timeouts)
        self.assertEqual('RegionOne', conn.config.get_region_name('compute'))

    def test_read_timeout_applies_to_every_request(self) -> None:
        # A listener that never answers: the connection is accepted by the kernel, the read times out.
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(('127.0.0.1', 0))
        listener.listen(8)
        session = openstack_client.TimeoutSession(1.0, 0.3)
        self.addCleanup(session.close)
        from keystoneauth1 import session as ks_session

        ks = ks_session.Session(session=session, timeout=60)  # keystoneauth's own single timeout is overridden
        started = time.monotonic()
        self.assertRaises(ks_exceptions.ConnectTimeout, ks.get,
                          'http://127.0.0.1:%d/' % listener.getsockname()[1], authenticated=False)
        self.assertLess(time.monotonic() - started, 2.0)


class TestRegistryHook(testtools.TestCase):

    def test_default_is_active(self) -> None:
        sink = LogSink(None, None)  # type: ignore[arg-type]
        self.assertTrue(sink.is_active('i-1', 'inc-1'))
        sink.bind_registry(lambda instance, incident: incident == 'inc-2')
        self.assertFalse(sink.is_active('i-1', 'inc-1'))
        self.assertTrue(sink.is_active('i-1', 'inc-2'))

    def test_registry_is_active(self) -> None:
        registry = FaultRegistry()
        registry.add(fault())
        self.assertTrue(registry.is_active('i-1', 'inc-1'))
        registry.clear('i-1', 'inc-1', 150.0, 'recovered')
        self.assertFalse(registry.is_active('i-1', 'inc-1'))


class RecordingSinks:
    def __init__(self) -> None:
        self.raised: list[dict[str, Any]] = []

    def fault_raised(self, fault: dict[str, Any]) -> frozenset[str]:
        self.raised.append(fault)
        return frozenset()

    def fault_cleared(self, fault: dict[str, Any], cleared: dict[str, Any]) -> None:
        pass


class TestRaisedBy(testtools.TestCase):
    """Sinks learn whether this controller accepted the report or rebuilt the fault from a state report."""

    def test_report_and_resync(self) -> None:
        sinks = RecordingSinks()
        handler = FaultHandler(FaultRegistry(), sinks, None)  # type: ignore[arg-type]
        handler.report_fault(fault())
        handler.report_state(report('cmp-1', 50.0, item('i-1', 'inc-1'), item('i-2', 'inc-9')))
        self.assertEqual([base.RAISED_BY_REPORT, base.RAISED_BY_RESYNC], [f[base.RAISED_BY] for f in sinks.raised])
        # The registry and the other sinks' payloads keep exactly the fault keys.
        self.assertNotIn(base.RAISED_BY, handler.list_faults()[0])
        self.assertNotIn(base.RAISED_BY, base.event_payload(sinks.raised[0]))


class TestEntryPoints(testtools.TestCase):

    def test_load_recovery_sinks(self) -> None:
        conf = self.useFixture(ConfFixture()).conf
        stub = OpenStackStub()
        configure_nova_api(conf, stub)
        conf.set_override('enabled', False, group='recovery')  # no warm-up against the stopped stub
        conf.set_override('fault_sinks', ['log', 'recovery', 'masakari'], group='controller')
        registry = FaultRegistry()
        sinks = load_sinks(conf, None, registry.is_active)
        for sink in sinks.values():
            self.addCleanup(sink.close)
        self.assertEqual(['log', 'recovery', 'masakari'], list(sinks))
        self.assertIsInstance(sinks['recovery'], RecoverySink)
        self.assertIsInstance(sinks['masakari'], MasakariSink)
        registry.add(fault())
        self.assertTrue(sinks['recovery'].is_active('i-1', 'inc-1'))
        self.assertFalse(sinks['masakari'].is_active('i-1', 'inc-2'))


class TestStubActions(testtools.TestCase):
    """The stand-in Nova and Masakari as openstacksdk sees them: what the idempotency checks read."""

    def setUp(self) -> None:
        super().setUp()
        conf = self.useFixture(ConfFixture()).conf
        self.stub = OpenStackStub()
        self.stub.start()
        self.addCleanup(self.stub.stop)
        configure_nova_api(conf, self.stub)
        self.connection = openstack_client.connect(conf)
        self.addCleanup(self.connection.close)

    def test_instance_actions_and_stop(self) -> None:
        server = self.stub.add_server({})
        before = time.time() - 1
        self.connection.compute.reboot_server(server.uuid, 'HARD')
        self.connection.compute.stop_server(server.uuid)
        actions = list(self.connection.compute.server_actions(server.uuid, changes_since=iso_utc(before)))
        self.assertEqual(['stop', 'reboot'], [a.action for a in actions])  # newest first, as Nova lists them
        self.assertEqual([], list(self.connection.compute.server_actions(server.uuid,
                                                                         changes_since=iso_utc(time.time() + 5))))
        self.assertEqual('SHUTOFF', self.connection.compute.get_server(server.uuid).status)

    def test_masakari_refuses_a_duplicate(self) -> None:
        server = self.stub.add_server({})
        note = vm_notification(dict(fault(instance=server.uuid), detected_at=time.time()))
        self.connection.instance_ha.create_notification(**note)
        exc = self.assertRaises(sdk_exceptions.ConflictException, self.connection.instance_ha.create_notification,
                                **note)
        self.assertIn('is duplicate', '%s %s' % (exc.message, exc.details))
        self.assertEqual(2, len(self.stub.notifications()))
