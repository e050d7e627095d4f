"""FaultHandler: reports to registry changes, sink events once per incident, peer sync between controllers."""

from __future__ import annotations

from typing import Any, Optional

import fixtures
import testtools

from ha_guest.controller import handler as handler_mod
from ha_guest.controller.handler import FaultHandler
from ha_guest.controller.registry import FaultRegistry
from ha_guest.rpc import FaultRegistryFull, InvalidPayload
from tests.unit.controller.test_registry import fault, item, report


class RecordingSinks:
    """Stands in for SinkDispatcher: records synchronously."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def fault_raised(self, fault: dict[str, Any]) -> None:
        self.events.append(('raised', fault['instance_uuid'], fault['incident_id']))

    def fault_cleared(self, fault: dict[str, Any], cleared: dict[str, Any]) -> None:
        self.events.append(('cleared', fault['instance_uuid'], fault['incident_id'], cleared['cleared_by']))


class Bus:
    """An in-memory fanout: every controller gets every cast, the sender too (as on RabbitMQ)."""

    def __init__(self) -> None:
        self.handlers: list[FaultHandler] = []
        self.casts: list[tuple[str, str]] = []

    def cast(self, origin: str, method: str, *args: Any) -> None:
        self.casts.append((origin, method))
        for handler in list(self.handlers):
            getattr(handler, method)(origin, *args)


class BusPeers:
    def __init__(self, origin: str, bus: Bus) -> None:
        self.origin = origin
        self.bus = bus

    def sync_fault(self, fault: dict[str, Any]) -> None:
        self.bus.cast(self.origin, 'sync_fault', fault)

    def sync_clear(self, instance_uuid: str, incident_id: Optional[str], cleared: dict[str, Any],
                   notify: bool) -> None:
        self.bus.cast(self.origin, 'sync_clear', instance_uuid, incident_id, cleared, notify)

    def sync_request(self) -> None:
        self.bus.cast(self.origin, 'sync_request')

    def sync_faults(self, faults: list[dict[str, Any]]) -> None:
        self.bus.cast(self.origin, 'sync_faults', faults)


def recovery(instance: str = 'i-1', incident: str = 'inc-1') -> dict[str, Any]:
    return {'instance_uuid': instance, 'host': 'cmp-1', 'incident_id': incident, 'recovered_at': 150.0}


def exit_report(instance: str = 'i-1') -> dict[str, Any]:
    return {'instance_uuid': instance, 'host': 'cmp-1', 'reason': 'shutdown', 'at': 160.0}


class HandlerTestCase(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.bus = Bus()
        self.a, self.sinks_a = self.controller('a')
        self.b, self.sinks_b = self.controller('b')

    def controller(self, origin: str, max_faults: int = 100) -> tuple[FaultHandler, RecordingSinks]:
        sinks = RecordingSinks()
        handler = FaultHandler(FaultRegistry(max_faults), sinks, BusPeers(origin, self.bus))  # type: ignore[arg-type]
        self.bus.handlers.append(handler)
        return handler, sinks


class TestReports(HandlerTestCase):

    def test_raise_once(self) -> None:
        self.assertEqual({'duplicate': False}, self.a.report_fault(fault()))
        self.assertEqual({'duplicate': True}, self.a.report_fault(fault()))
        self.assertEqual([('raised', 'i-1', 'inc-1')], self.sinks_a.events)

    def test_list_faults(self) -> None:
        self.a.report_fault(fault())
        self.a.report_fault(fault(instance='i-2'))
        self.assertEqual([dict(fault(), state='active')], self.a.list_faults('i-1'))
        self.assertEqual(2, len(self.a.list_faults()))

    def test_recovery_clears(self) -> None:
        self.a.report_fault(fault())
        self.a.report_recovery(recovery())
        self.assertEqual([], self.a.list_faults())
        self.assertEqual(('cleared', 'i-1', 'inc-1', 'recovered'), self.sinks_a.events[-1])
        self.a.report_recovery(recovery())  # a retried recovery: nothing more
        self.assertEqual(2, len(self.sinks_a.events))

    def test_exit_clears_every_incident(self) -> None:
        self.a.report_fault(fault(incident='x'))
        self.a.report_fault(fault(incident='y'))
        self.a.report_exit(exit_report())
        self.assertEqual([], self.a.list_faults())
        self.assertEqual({('cleared', 'i-1', 'x', 'exited'), ('cleared', 'i-1', 'y', 'exited')},
                         set(self.sinks_a.events[2:]))

    def test_state_report(self) -> None:
        self.a.report_fault(fault(instance='i-1'))
        self.a.report_state(report('cmp-1', 200.0, item('i-1'), item('i-2', 'inc-2', 'unhealthy')))
        self.assertEqual([('raised', 'i-1', 'inc-1'), ('cleared', 'i-1', 'inc-1', 'resync'),
                          ('raised', 'i-2', 'inc-2')], sorted(self.sinks_a.events, key=lambda e: e[1]))
        # The peer follows, without telling its own sinks.
        self.assertEqual(['i-2'], [f['instance_uuid'] for f in self.b.list_faults()])
        self.assertEqual([], self.sinks_b.events)

    def test_invalid_payloads(self) -> None:
        self.assertRaises(InvalidPayload, self.a.report_fault, {'instance_uuid': 'i-1'})
        self.assertRaises(InvalidPayload, self.a.report_recovery, {})
        self.assertRaises(InvalidPayload, self.a.report_exit, {})
        self.assertRaises(InvalidPayload, self.a.report_state, {'host': 'h'})

    def test_registry_full(self) -> None:
        small, sinks = self.controller('small', max_faults=1)
        small.report_fault(fault(incident='x'))
        self.assertRaises(FaultRegistryFull, small.report_fault, fault(incident='y'))
        self.assertEqual([('raised', 'i-1', 'x')], sinks.events)


class TestPeers(HandlerTestCase):

    def test_duplicate_at_the_other_controller(self) -> None:
        self.assertEqual({'duplicate': False}, self.a.report_fault(fault()))
        self.assertEqual({'duplicate': True}, self.b.report_fault(fault()))
        self.assertEqual(self.a.list_faults(), self.b.list_faults())
        self.assertEqual([('raised', 'i-1', 'inc-1')], self.sinks_a.events)
        self.assertEqual([], self.sinks_b.events)

    def test_own_casts_ignored(self) -> None:
        self.a.report_fault(fault())
        self.a.report_recovery(recovery())
        self.assertEqual(2, len(self.sinks_a.events))  # the fanout came back to a, and changed nothing

    def test_clear_at_the_other_controller(self) -> None:
        self.a.report_fault(fault())
        self.b.report_recovery(recovery())
        self.assertEqual([], self.a.list_faults())
        self.assertEqual([], self.b.list_faults())
        self.assertEqual([('cleared', 'i-1', 'inc-1', 'recovered')], self.sinks_b.events)
        self.assertEqual([('raised', 'i-1', 'inc-1')], self.sinks_a.events)

    def test_clear_unknown_to_the_receiver_is_notified_by_the_holder(self) -> None:
        # b missed the sync (e.g. it started late): a holds the fault alone.
        self.a.registry.add(fault())
        self.b.report_recovery(recovery())
        self.assertEqual([], self.a.list_faults())
        self.assertEqual([('cleared', 'i-1', 'inc-1', 'recovered')], self.sinks_a.events)
        self.assertEqual([], self.sinks_b.events)

    def test_exit_at_the_other_controller(self) -> None:
        self.a.report_fault(fault())
        self.b.report_exit(exit_report())
        self.assertEqual([], self.a.list_faults())
        self.assertEqual([('cleared', 'i-1', 'inc-1', 'exited')], self.sinks_b.events)

    def test_new_controller_gets_peers_faults(self) -> None:
        self.a.report_fault(fault(instance='i-1'))
        self.a.report_fault(fault(instance='i-2'))
        c, sinks_c = self.controller('c')
        self.patch(handler_mod, 'SYNC_BATCH', 1)
        c.request_peer_sync()
        self.assertEqual(2, len(c.list_faults()))
        self.assertEqual([], sinks_c.events)
        self.assertEqual(4, sum(1 for _, method in self.bus.casts if method == 'sync_faults'))  # a and b, 1 each

    def test_no_peers(self) -> None:
        alone = FaultHandler(FaultRegistry(), RecordingSinks(), None)  # type: ignore[arg-type]
        self.assertEqual({'duplicate': False}, alone.report_fault(fault()))
        alone.report_recovery(recovery())
        alone.request_peer_sync()
        self.assertEqual([], alone.list_faults())

    def test_peer_news_never_revives_a_cleared_incident(self) -> None:
        # b learnt of the recovery first (e.g. the agent's retry went there): a's late sync_fault is stale.
        self.b.registry.clear('i-1', 'inc-1', 150.0, 'recovered')
        self.b.sync_fault('a', fault())
        self.assertEqual([], self.b.list_faults())

    def test_peer_news_beyond_the_bound_is_logged(self) -> None:
        small, _ = self.controller('small', max_faults=1)
        small.registry.add(fault(incident='x'))
        log = self.useFixture(fixtures.FakeLogger())
        small.sync_fault('a', fault(incident='y'))
        self.assertIn('fault registry full', log.output)
