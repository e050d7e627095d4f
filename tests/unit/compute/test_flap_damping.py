"""Flap damping on a fake clock: the FlapDamper alone, and monitor -> IncidentReports -> reports."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

import testtools

from ha_guest.compute.flap_damping import DampingPolicy, FlapDamper, Incident
from ha_guest.compute.heartbeat_monitor import GuestMonitor, HeartbeatPolicy
from ha_guest.compute.incident_reports import IncidentReports
from ha_guest.compute.scheduler import TickScheduler

UUID = "6b3c1f0e-2a4d-4c8e-9f17-5d2b8a0c4e91"
TICK = 0.01
WALL_OFFSET = 1_700_000_000.0


def incident(n: int) -> Incident:
    return Incident("inc-%d" % n, "unhealthy", "reason %d" % n)


class TestFlapDamper(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.damper = FlapDamper(DampingPolicy(hold_down_s=1.0, max_hold_down_s=8.0, half_life_s=60.0))

    def test_first_fault_reported_recovery_after_hold_down(self) -> None:
        self.assertTrue(self.damper.fault(UUID, incident(1), 10.0))
        self.assertIsNone(self.damper.recovered(UUID, "inc-1", 10.5))
        self.assertEqual("inc-1", self.damper.held(UUID).incident_id)  # type: ignore[union-attr]
        self.assertEqual([], self.damper.due(11.4))
        self.assertEqual([(UUID, incident(1), 10.5)], self.damper.due(11.5))
        self.assertIsNone(self.damper.held(UUID))
        self.assertEqual([], self.damper.due(100.0))

    def test_fault_during_hold_down_is_folded_in(self) -> None:
        self.assertTrue(self.damper.fault(UUID, incident(1), 10.0))
        self.assertIsNone(self.damper.recovered(UUID, "inc-1", 10.1))
        self.assertFalse(self.damper.fault(UUID, incident(2), 10.2))
        self.assertEqual([], self.damper.due(12.0))  # the held recovery was cancelled
        self.assertIsNone(self.damper.recovered(UUID, "inc-2", 10.3))  # the monitor's id inside ours
        self.assertEqual(1, self.damper.folded(UUID))
        # Two faults: the hold-down doubled.
        self.assertEqual([], self.damper.due(12.2))
        self.assertEqual([(UUID, incident(1), 10.3)], self.damper.due(12.3))

    def test_hold_down_grows_to_max_and_decays(self) -> None:
        now = 0.0
        for n in range(20):
            self.damper.fault(UUID, incident(n), now)
            self.damper.recovered(UUID, "inc-%d" % n, now + 0.05)
            now += 0.1
        self.assertAlmostEqual(8.0, self.damper.hold_remaining(UUID, now - 0.05) or 0.0, delta=0.05)
        self.assertEqual(1, len(self.damper.due(now + 10)))
        # Ten half-lives later the penalty is nearly gone: the base hold-down again.
        later = now + 600.0
        self.assertTrue(self.damper.fault(UUID, incident(99), later))
        self.damper.recovered(UUID, "inc-99", later)
        self.assertAlmostEqual(1.0, self.damper.hold_remaining(UUID, later) or 0.0, delta=0.01)

    def test_no_damping_recovers_at_once(self) -> None:
        damper = FlapDamper(DampingPolicy(hold_down_s=0.0))
        self.assertTrue(damper.fault(UUID, incident(1), 1.0))
        self.assertEqual("inc-1", damper.recovered(UUID, "inc-1", 1.1))
        self.assertTrue(damper.fault(UUID, incident(2), 1.2))

    def test_confirmation_of_the_open_incident_is_reported_again(self) -> None:
        self.damper.restored(UUID, incident(1), 0.0)
        self.assertTrue(self.damper.fault(UUID, incident(1), 1.0))  # the controller dedupes it
        self.assertIsNone(self.damper.recovered(UUID, "inc-1", 2.0))
        self.assertEqual([(UUID, incident(1), 2.0)], self.damper.due(10.0))

    def test_unknown_recovery_passes_and_exit_forgets(self) -> None:
        self.assertEqual("other", self.damper.recovered(UUID, "other", 1.0))
        self.damper.fault(UUID, incident(1), 1.0)
        self.damper.recovered(UUID, "inc-1", 1.1)
        self.damper.ended(UUID)
        self.assertIsNone(self.damper.held(UUID))
        self.assertEqual([], self.damper.due(100.0))
        self.damper.fault(UUID, incident(2), 2.0)
        self.damper.forget(UUID)
        self.assertIsNone(self.damper.held(UUID))


class FakeReporter:
    """Records what IncidentReports sends (through the outbox, to the reporter)."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, Dict[str, Any]]] = []

    def __call__(self, method: str, payload: Dict[str, Any]) -> None:
        getattr(self, method)(payload)

    def report_fault(self, fault: Dict[str, Any]) -> None:
        self.calls.append(("fault", fault))

    def report_recovery(self, recovery: Dict[str, Any]) -> None:
        self.calls.append(("recovery", recovery))

    def report_exit(self, exit: Dict[str, Any]) -> None:
        self.calls.append(("exit", exit))

    def of(self, name: str) -> List[Dict[str, Any]]:
        return [payload for call, payload in self.calls if call == name]


class Agent:
    """A monitor, IncidentReports and a guest on one fake clock, as the compute agent's tick runs them."""

    def __init__(self, policy: Optional[DampingPolicy] = None) -> None:
        self.now = 1000.0
        self.sent: List[str] = []
        self.reporter = FakeReporter()
        self.reports = IncidentReports("node-1", self.reporter, policy or DampingPolicy(),  # type: ignore[arg-type]
                                       lambda: self.now, lambda at: at + WALL_OFFSET)
        self.scheduler = TickScheduler()
        self.monitor = GuestMonitor(UUID, self.sent.append, self.reports.on_event, HeartbeatPolicy())
        self.monitor.register(100, self.now)
        self.scheduler.schedule(self.monitor)

    def run(self, seconds: float, health: Any) -> None:
        """Tick for ``seconds``; ``health(now)`` says how the guest answers each challenge (None: not at all)."""
        end = self.now + seconds - 1e-9
        while self.now < end:
            self.now = round(self.now + TICK, 6)
            before = len(self.sent)
            self.scheduler.run_due(self.now)
            self.reports.run_due(self.now)
            if len(self.sent) > before:
                answer = health(self.now)
                if answer is not None:
                    self.monitor.response(self.sent[-1], answer, "" if answer else "check failed", self.now)


def every_100ms(now: float) -> bool:
    return int(round(now * 10)) % 2 == 0


class TestDampedReports(testtools.TestCase):

    def test_flapping_every_100ms_for_a_minute_is_at_most_10_incidents(self) -> None:
        agent = Agent()
        agent.run(60.0, every_100ms)
        faults = agent.reporter.of("fault")
        self.assertLessEqual(len(faults), 10)
        self.assertEqual(1, len(faults))  # with the defaults: one incident for the whole minute
        self.assertGreater(agent.monitor.stats.responses, 500)  # it did flap, every answer

    def test_answering_every_other_challenge_for_a_minute_is_one_incident(self) -> None:
        agent = Agent()
        agent.run(60.0, lambda now: True if every_100ms(now) else None)
        self.assertEqual(1, len(agent.reporter.of("fault")))

    def test_without_damping_the_same_flapper_is_hundreds(self) -> None:
        agent = Agent(DampingPolicy(hold_down_s=0.0))
        agent.run(60.0, every_100ms)
        self.assertGreater(len(agent.reporter.of("fault")), 100)

    def test_single_fault_reported_at_once(self) -> None:
        agent = Agent()
        agent.run(1.0, lambda now: True)
        started = agent.now
        agent.run(0.3, lambda now: False)
        fault = agent.reporter.of("fault")[0]
        # The first unhealthy answer, within one interval (and one tick) of the change.
        self.assertLessEqual(fault["detected_at"] - WALL_OFFSET - started, 0.11)
        self.assertEqual("unhealthy", fault["kind"])

    def test_steady_health_closes_after_the_hold_down(self) -> None:
        agent = Agent(DampingPolicy(hold_down_s=2.0))
        agent.run(0.5, lambda now: False)
        agent.run(0.05, lambda now: True)
        self.assertEqual([], agent.reporter.of("recovery"))
        healthy_at = agent.monitor.stats.responses and agent.now
        agent.run(1.9, lambda now: True)
        self.assertEqual([], agent.reporter.of("recovery"))
        agent.run(0.2, lambda now: True)
        recovery = agent.reporter.of("recovery")
        self.assertEqual([agent.reporter.of("fault")[0]["incident_id"]], [r["incident_id"] for r in recovery])
        # recovered_at: when the guest became healthy for good, not when the hold-down ended.
        self.assertLess(abs(recovery[0]["recovered_at"] - WALL_OFFSET - healthy_at), 0.11)

    def test_flapping_then_steady_closes_one_incident(self) -> None:
        agent = Agent()
        agent.run(20.0, every_100ms)
        agent.run(60.0, lambda now: True)
        faults, recoveries = agent.reporter.of("fault"), agent.reporter.of("recovery")
        self.assertEqual(1, len(faults))
        self.assertEqual([faults[0]["incident_id"]], [r["incident_id"] for r in recoveries])
        self.assertIsNone(agent.reports.damper.held(UUID))

    def test_open_incident_shown_while_monitor_is_healthy(self) -> None:
        agent = Agent()
        agent.run(2.0, every_100ms)
        agent.run(0.15, lambda now: True)
        fault = agent.reporter.of("fault")[0]
        self.assertIsNone(agent.monitor.incident_id)  # the monitor itself says healthy
        self.assertEqual((fault["incident_id"], "unhealthy", "check failed"),
                         agent.reports.fault_fields(UUID, agent.monitor))
        self.assertEqual("unhealthy", agent.reports.saved_state(UUID, agent.monitor).value)

    def test_flapping_logs_one_warning_and_few_lines(self) -> None:
        agent = Agent()
        logger = logging.getLogger("ha_guest.compute.incident_reports")
        with self.assertLogs(logger, logging.DEBUG) as logs:
            agent.run(60.0, every_100ms)
        warnings = [r for r in logs.records if r.levelno >= logging.WARNING]
        self.assertEqual(1, len(warnings), logs.output)
        self.assertIn("FAULT unhealthy", warnings[0].getMessage())
        # One line per topic per 10 s at most ("flap", "held", "registered").
        self.assertLessEqual(len(logs.records), 1 + 3 * 7, logs.output)
