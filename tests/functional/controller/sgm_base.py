"""Fixtures of the controller's server group messaging tests on a real RabbitMQ.

A stub Nova (ha_guest/testing/openstack_stub.py), in-process ControllerManagers on the
broker, and fake compute agents: RPC servers on the compute topic that record
every sgm_deliver / sgm_notify / sgm_nack cast they get. Used by
tests/functional/controller and tests/sgm (the nova tox env).
"""

from __future__ import annotations

import base64
import queue
import threading
import time
import uuid
from typing import Any, Optional

import fixtures
import oslo_messaging
import testtools

from ha_guest.controller.manager import ControllerManager
from ha_guest.rpc import transport as rpc_transport
from ha_guest.rpc.compute_api import COMPUTE_API_VERSION, compute_server_target
from ha_guest.testing.openstack_stub import OpenStackStub, configure_nova_api
from tests.functional.rabbit import TIMEOUT, RabbitFixture
from tests.messaging import unique


def set_sgm_option(conf: Any, name: str, value: Any) -> None:
    """Override an [sgm] option, past oslo.messaging's ConfFixture.

    That fixture rewrites set_override('notification_topics' / 'notification_transport_url', ...)
    to its own [oslo_messaging_notifications] options, whatever group is asked for.
    """
    getattr(conf.set_override, 'wrapped', conf.set_override)(name, value, group='sgm')


class ComputeRecorder:
    """Endpoint of a fake compute agent: keeps (method, items) of every SGM cast, in arrival order."""

    target = oslo_messaging.Target(version=COMPUTE_API_VERSION)

    def __init__(self, host: str) -> None:
        self.host = host
        self.received: queue.Queue[tuple[str, list[dict[str, Any]]]] = queue.Queue()
        self.casts: list[tuple[str, list[dict[str, Any]]]] = []
        self._lock = threading.Lock()

    def _record(self, method: str, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self.casts.append((method, items))
        self.received.put((method, items))

    def sgm_deliver(self, ctxt: Any, deliveries: list[dict[str, Any]]) -> None:
        self._record('sgm_deliver', deliveries)

    def sgm_notify(self, ctxt: Any, notifications: list[dict[str, Any]]) -> None:
        self._record('sgm_notify', notifications)

    def sgm_nack(self, ctxt: Any, nacks: list[dict[str, Any]]) -> None:
        self._record('sgm_nack', nacks)

    def request_state_report(self, ctxt: Any) -> None:
        pass

    def get(self, timeout: float = TIMEOUT) -> tuple[str, list[dict[str, Any]]]:
        """Return the next cast; AssertionError if none arrives in time."""
        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError('host %s: no SGM cast within %.1fs' % (self.host, timeout)) from None

    def nothing_more(self, wait: float = 0.3) -> bool:
        """Return whether no further cast arrives within ``wait`` seconds."""
        try:
            extra = self.received.get(timeout=wait)
        except queue.Empty:
            return True
        self.received.put(extra)
        return False


class ComputeRecorderFixture(fixtures.Fixture):
    """A running fake compute agent RPC server for ``host``."""

    def __init__(self, rabbit: RabbitFixture, host: str) -> None:
        super().__init__()
        self.rabbit = rabbit
        self.recorder = ComputeRecorder(host)

    def _setUp(self) -> None:
        target = compute_server_target(self.rabbit.conf, self.recorder.host)
        server = rpc_transport.get_rpc_server(self.rabbit.transport, target, [self.recorder])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)


class ControllerFixture(fixtures.Fixture):
    """An in-process ControllerManager on the fixture's broker, Nova answered by ``stub``."""

    def __init__(self, rabbit: RabbitFixture) -> None:
        super().__init__()
        self.rabbit = rabbit

    def _setUp(self) -> None:
        self.manager = ControllerManager(self.rabbit.conf, self.rabbit.transport, self.rabbit.notification_transport)
        self.manager.start()
        self.addCleanup(self.manager.stop)


class SgmTestCase(testtools.TestCase):
    """A broker, a stub Nova, [sgm] on test-private topics; controllers and compute hosts on demand."""

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(fixtures.Timeout(90, gentle=True))
        self.rabbit = self.useFixture(RabbitFixture())
        self.conf = self.rabbit.conf
        self.stub = OpenStackStub()
        self.stub.start()
        self.addCleanup(self.stub.stop)
        configure_nova_api(self.conf, self.stub)
        self.nova_topic = unique('versioned_notifications')
        set_sgm_option(self.conf, 'notification_topics', [self.nova_topic])
        set_sgm_option(self.conf, 'notification_pool', unique('ha_guest-sgm'))
        # An exchange of the test's own: the tests declare theirs auto-delete, which a broker refuses for an
        # exchange that someone else declared otherwise (Nova's "nova" is not auto-delete).
        self.nova_exchange = unique('nova')
        set_sgm_option(self.conf, 'notification_exchange', self.nova_exchange)
        self.conf.set_override('fault_sinks', ['log'], group='controller')
        self.conf.set_override('resync_on_start', False, group='controller')

    def start_controller(self) -> ControllerManager:
        return self.useFixture(ControllerFixture(self.rabbit)).manager

    def start_host(self, host: str) -> ComputeRecorder:
        return self.useFixture(ComputeRecorderFixture(self.rabbit, host)).recorder

    def api(self, timeout: Optional[float] = None) -> Any:
        return self.rabbit.controller_api(timeout=timeout)


def make_broadcast(sender: str, host: str, payload: bytes = b'hello', ref_seq: int = 1,
                   session: str = 's1') -> dict[str, Any]:
    """Return one broadcast as a compute agent hands it to a controller."""
    return {'sender': sender, 'host': host, 'session': session, 'ref_seq': ref_seq,
            'payload': base64.b64encode(payload).decode('ascii'), 'stamp': time.time_ns(), 'sent_at': time.time()}


def new_uuid() -> str:
    return str(uuid.uuid4())
