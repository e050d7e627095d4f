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

    def fault_raised(self, fault: dict[str, Any]) -> frozenset[str]:
        self.events.append(('raised', fault['instance_uuid'], fault['incident_id']))
        return frozenset()

    def fault_cleared(self, fault: dict[str, Any], cleared: dict[str, Any]) -> None:
        self.events.append(('cleared', fault['instance_uuid'], fault['incident_id'], cleared['cleared_by']))


class Bus:
    """An in-memory fanout: every controller gets every cast, the sender too (as on RabbitMQ).

    ``held``: casts wait in ``queue`` until flush() (a peer sync still on its way).
    """

    def __init__(self) -> None:
        self.handlers: list[FaultHandler] = []
        self.casts: list[tuple[str, str]] = []
        self.log: list[tuple[str, str, tuple[Any, ...]]] = []
        self.held = False
        self.queue: list[tuple[str, str, tuple[Any, ...]]] = []

    def cast(self, origin: str, method: str, *args: Any) -> None:
        self.casts.append((origin, method))
        self.log.append((origin, method, args))
        if self.held:
            self.queue.append((origin, method, args))
            return
        self.deliver(origin, method, args)

    def deliver(self, origin: str, method: str, args: tuple[Any, ...]) -> None:
        for handler in list(self.handlers):
            getattr(handler, method)(origin, *args)

    def flush(self) -> None:
        queued, self.queue = self.queue, []
        for origin, method, args in queued:
            self.deliver(origin, method, args)

    def replay(self) -> None:
        """Deliver every cast so far once more, in order (a stream fanout's replay after a reconnect)."""
        for origin, method, args in list(self.log):
            self.deliver(origin, method, args)


class RecordingIntents:
    """Stands in for IntentPublisher: records each intent; ``fail`` makes publish raise."""

    def __init__(self) -> None:
        self.published: list[list[str]] = []
        self.fail = False

    def publish(self, faults: list[dict[str, Any]]) -> None:
        if self.fail:
            raise ConnectionError('broker gone')
        self.published.append([f['incident_id'] for f in faults])


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

    def controller(self, origin: str, max_faults: int = 100, intents: Any = None,
                   grace: float = 0.0) -> tuple[FaultHandler, RecordingSinks]:
        sinks = RecordingSinks()
        handler = FaultHandler(FaultRegistry(max_faults, grace), sinks,  # type: ignore[arg-type]
                               BusPeers(origin, self.bus), intents=intents)
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

    def test_exit_leaves_a_later_incident(self) -> None:
        self.a.report_fault(fault(incident='late', at=170.0))  # after the exit at 160: a new registration's
        self.b.report_exit(exit_report())
        self.assertEqual(['late'], [f['incident_id'] for f in self.a.list_faults()])
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


class TestAnnouncedOnce(HandlerTestCase):
    """Each incident: one raised and one cleared over all controllers, whatever the order of the news."""

    def setUp(self) -> None:
        super().setUp()
        self.bus = Bus()
        self.a, self.sinks_a = self.controller('a', grace=10.0)
        self.b, self.sinks_b = self.controller('b', grace=10.0)

    def events(self) -> list[tuple[Any, ...]]:
        return self.sinks_a.events + self.sinks_b.events

    @staticmethod
    def keys(handler: FaultHandler) -> list[tuple[str, str, float]]:
        return [(f['instance_uuid'], f['incident_id'], f['detected_at']) for f in handler.list_faults()]

    def test_restarted_controller_relearns_silently(self) -> None:
        self.a.report_fault(fault(at=120.0))
        fresh, sinks = self.controller('fresh', grace=10.0)
        fresh.report_state(report('cmp-1', 200.0, item('i-1', 'inc-1', detected_at=120.0, announced=True),
                                  agent=True))
        self.assertEqual([], sinks.events)
        (known,) = fresh.list_faults()
        self.assertEqual(120.0, known['detected_at'])

    def test_state_report_wins_the_race_against_the_peer_sync(self) -> None:
        self.bus.held = True
        self.a.report_fault(fault(at=120.0))
        # Before and after the agent heard a's answer: neither makes b raise.
        self.b.report_state(report('cmp-1', 121.0, item('i-1', 'inc-1', detected_at=120.0, announced=False),
                                   agent=True))
        self.b.report_state(report('cmp-1', 122.0, item('i-1', 'inc-1', detected_at=120.0, announced=True),
                                   agent=True))
        self.bus.flush()
        self.assertEqual([('raised', 'i-1', 'inc-1')], self.events())
        self.assertEqual(self.keys(self.a), self.keys(self.b))

    def test_state_report_wins_the_race_against_the_clear(self) -> None:
        self.a.report_fault(fault(at=120.0))
        self.bus.held = True
        self.a.report_recovery(recovery())
        # b hears the agent's next report (the incident is over) before a's sync_clear.
        self.b.report_state(report('cmp-1', 151.0, item('i-1'), agent=True))
        self.bus.flush()
        self.assertEqual([('raised', 'i-1', 'inc-1'), ('cleared', 'i-1', 'inc-1', 'recovered')], self.events())
        self.assertEqual([], self.b.list_faults())

    def test_recovery_lost_is_cleared_once_after_the_grace(self) -> None:
        self.a.report_fault(fault(at=120.0))
        self.b.report_state(report('cmp-1', 200.0, item('i-1'), agent=True))
        self.a.report_state(report('cmp-1', 230.0, item('i-1'), agent=True))  # first miss at a
        self.b.report_state(report('cmp-1', 260.0, item('i-1'), agent=True))
        self.assertEqual([('raised', 'i-1', 'inc-1'), ('cleared', 'i-1', 'inc-1', 'resync')], self.events())

    def test_replayed_fanout_changes_nothing(self) -> None:
        self.a.report_fault(fault(incident='x', at=120.0))
        self.b.report_fault(fault(incident='y', at=121.0))
        self.b.report_recovery(recovery(incident='x'))
        self.a.report_exit(exit_report())
        self.a.report_fault(fault(incident='z', at=170.0))
        self.a.request_peer_sync()
        before = list(self.events())
        self.bus.replay()
        self.bus.replay()
        self.assertEqual(before, self.events())
        self.assertEqual(['z'], [f['incident_id'] for f in self.b.list_faults()])
        self.assertEqual(self.keys(self.a), self.keys(self.b))
        self.assertEqual(3, sum(1 for e in self.events() if e[0] == 'raised'))
        self.assertEqual(2, sum(1 for e in self.events() if e[0] == 'cleared'))


class TestIntents(HandlerTestCase):
    """Recovery intents: one per accepted report (or batch), on the broker before the answer."""

    def setUp(self) -> None:
        super().setUp()
        self.intents = RecordingIntents()
        self.c, self.sinks_c = self.controller('c', intents=self.intents)

    def test_one_intent_per_new_fault(self) -> None:
        self.c.report_fault(fault(incident='x'))
        self.c.report_fault(fault(incident='x'))  # a duplicate: handed to recovery already
        self.assertEqual([['x']], self.intents.published)

    def test_failed_publish_fails_the_report_and_the_retry_sends_it(self) -> None:
        self.intents.fail = True
        self.assertRaises(ConnectionError, self.c.report_fault, fault(incident='x'))
        self.intents.fail = False
        self.assertEqual({'duplicate': True}, self.c.report_fault(fault(incident='x')))
        self.assertEqual([['x']], self.intents.published)
        self.c.report_fault(fault(incident='x'))
        self.assertEqual([['x']], self.intents.published)  # sent: owed no more

    def test_batch_is_one_intent(self) -> None:
        with self.c.intent_batch():
            self.c.report_fault(fault(incident='x'))
            self.c.report_fault(fault(instance='i-2', incident='y'))
            self.c.report_fault(fault(incident='x'))
            self.assertEqual([], self.intents.published)
        self.assertEqual([['x', 'y']], self.intents.published)

    def test_collector_argument(self) -> None:
        collected: list[dict[str, Any]] = []
        self.c.report_fault(fault(incident='x'), intents=collected)
        self.assertEqual([], self.intents.published)
        self.c.publish_intents(collected)
        self.assertEqual([['x']], self.intents.published)

    def test_cleared_before_the_retry_is_owed_no_more(self) -> None:
        self.intents.fail = True
        self.assertRaises(ConnectionError, self.c.report_fault, fault(incident='x'))
        self.c.report_recovery(recovery(incident='x'))
        self.intents.fail = False
        self.assertEqual({'duplicate': True}, self.c.report_fault(fault(incident='x')))  # the retry: ended
        self.assertEqual([], self.intents.published)
        self.c.report_fault(fault(incident='x', at=160.0))  # detected again after the end: a new intent
        self.assertEqual([['x']], self.intents.published)

    def test_state_reports_publish_nothing(self) -> None:
        self.c.report_state(report('cmp-1', 200.0, item('i-1', 'old'),
                                   item('i-2', 'seen', detected_at=150.0, announced=True)))
        self.assertEqual(2, len(self.c.list_faults()))
        self.assertEqual([], self.intents.published)
        self.assertEqual([('raised', 'i-1', 'old')], self.sinks_c.events)

    def test_without_action_sinks_nothing_is_published(self) -> None:
        self.assertEqual({'duplicate': False}, self.a.report_fault(fault()))
        with self.a.intent_batch() as batch:
            self.a.report_fault(fault(incident='y'))
        self.assertEqual([], batch)
