"""The controller's collector over a real ControllerManager (fake driver) and a real recovery sink."""

from __future__ import annotations

import types

import testtools

from ha_guest import rpc
from ha_guest.controller.dispatch import SinkDispatcher, Worker
from ha_guest.controller.manager import ControllerManager
from ha_guest.controller.registry import FaultRegistry
from ha_guest.metrics import definitions
from ha_guest.metrics.controller import ControllerCollector
from ha_guest.rpc import transport as rpc_transport
from ha_guest.sinks.recovery import ACTED, SKIPPED
from ha_guest.testing import wait_for
from tests.messaging import ConfFixture
from tests.unit.controller.test_registry import fault
from tests.unit.metrics.scrape import scrape, value
from tests.unit.sinks.test_recovery import SinkTestCase, make_fault

R = "ha_guest_controller_"


class TestControllerCollector(testtools.TestCase):
    """A ControllerManager on the fake driver with the log and notifications sinks."""

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(ConfFixture(host='ctl-1')).conf
        self.conf.set_override('fault_sinks', ['log', 'notifications'], group='controller')
        self.transport = rpc_transport.get_rpc_transport(self.conf)
        self.addCleanup(self.transport.cleanup)
        self.api = rpc.ControllerAPI(self.conf, self.transport)

    def start(self) -> ControllerManager:
        manager = ControllerManager(self.conf, self.transport, self.transport)
        manager.start()
        self.addCleanup(manager.stop)
        return manager

    def test_faults_raised_open_and_cleared(self) -> None:
        manager = self.start()
        collector = ControllerCollector(manager)
        _, samples = scrape([collector])
        self.assertEqual(0, value(samples, R + "open_faults", kind="missed"))
        self.api.report_fault(None, fault('i-1', 'inc-1'))
        self.api.report_fault(None, fault('i-2', 'inc-2', kind='unhealthy'))
        self.api.report_fault(None, fault('i-1', 'inc-1'))  # a duplicate: no second raise
        _, samples = scrape([collector])
        self.assertEqual(1, value(samples, R + "open_faults", kind="missed"))
        self.assertEqual(1, value(samples, R + "open_faults", kind="unhealthy"))
        self.assertEqual(1, value(samples, R + "faults_raised_total", kind="missed"))
        self.assertEqual(1, value(samples, R + "faults_raised_total", kind="unhealthy"))
        self.api.report_recovery(None, {'instance_uuid': 'i-1', 'incident_id': 'inc-1', 'host': 'cmp-1',
                                        'recovered_at': 200.0})
        _, samples = scrape([collector])
        self.assertEqual(0, value(samples, R + "open_faults", kind="missed"))
        self.assertEqual(1, value(samples, R + "faults_cleared_total", kind="missed"))
        for sink in ('log', 'notifications', 'peer-sync'):
            self.assertEqual(0, value(samples, R + "sink_failures_total", sink=sink))
            self.assertEqual(0, value(samples, R + "sink_drops_total", sink=sink))
        wait_for(lambda: value(scrape([collector])[1], R + "sink_queue_depth", sink="notifications") == 0, 5.0,
                 message="the notifications sink to drain")
        self.assertEqual(0, value(samples, R + "sgm_broadcasts_total", outcome="delivered"))

    def test_exported_names_are_the_defined_ones(self) -> None:
        _, samples = scrape([ControllerCollector(self.start())])
        exported = {name for name, _ in samples}
        defined = definitions.series_names(definitions.CONTROLLER)
        self.assertEqual(set(), exported - defined)
        # recovery_actions_total needs an action sink: the test below.
        self.assertEqual({R + "recovery_actions_total"}, defined - exported)


class TestRecoveryActions(SinkTestCase):

    def test_decisions_by_outcome_and_a_full_queue(self) -> None:
        sink = self.sink()
        dispatcher = SinkDispatcher({'recovery': sink}, queue_size=1)  # not started: its queue fills
        manager = types.SimpleNamespace(registry=FaultRegistry(), dispatcher=dispatcher,
                                        peer_worker=Worker('peer-sync', 1),
                                        router=types.SimpleNamespace(stats=lambda: {'broadcasts': {}, 'events': {}}))
        uid = self.compute.add({'ha_guest:recovery': 'reboot'})
        self.raise_fault(sink, make_fault(uid))
        self.raise_fault(sink, make_fault(self.compute.add({}), incident='inc-2'))
        dispatcher.fault_raised(fault('i-1', 'inc-1'))
        dispatcher.fault_raised(fault('i-2', 'inc-2'))  # the queue of one is full
        _, samples = scrape([ControllerCollector(manager)])
        self.assertEqual(1, value(samples, R + "recovery_actions_total", sink="recovery", outcome=ACTED))
        self.assertEqual(1, value(samples, R + "recovery_actions_total", sink="recovery", outcome=SKIPPED))
        self.assertEqual(0, value(samples, R + "recovery_actions_total", sink="recovery", outcome="failed"))
        self.assertEqual(1, value(samples, R + "sink_queue_depth", sink="recovery"))
        self.assertEqual(1, value(samples, R + "sink_drops_total", sink="recovery"))
        self.assertEqual(2, value(samples, R + "faults_raised_total", kind="missed"))
