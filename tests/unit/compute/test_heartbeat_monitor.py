"""The per-guest heartbeat state machine, driven by a TickScheduler on a fake clock."""

from __future__ import annotations

from typing import List, Optional

import testtools

from ha_guest.compute import heartbeat_monitor as hm
from ha_guest.compute.channel_writer import ChannelSettings
from ha_guest.compute.discovery import libvirt, loader
from ha_guest.compute.heartbeat_monitor import EventKind, GuestMonitor, GuestState, HeartbeatPolicy, MonitorEvent
from ha_guest.compute.scheduler import TickScheduler

UUID = "6b3c1f0e-2a4d-4c8e-9f17-5d2b8a0c4e91"
TICK = 0.01


class Harness:
    """A monitor, a scheduler and a fake clock advanced tick by tick."""

    def __init__(self, policy: Optional[HeartbeatPolicy] = None, now: float = 100.0) -> None:
        self.now = now
        self.sent: List[str] = []
        self.events: List[MonitorEvent] = []
        self.scheduler = TickScheduler()
        self.monitor = GuestMonitor(UUID, self.sent.append, self.events.append, policy or HeartbeatPolicy())

    def register(self, interval_ms: int = 100) -> int:
        granted = self.monitor.register(interval_ms, self.now)
        self.scheduler.schedule(self.monitor)
        return granted

    def run(self, seconds: float, answer: Optional[str] = None, reason: str = "") -> None:
        """Advance the clock tick by tick; answer each challenge at once if ``answer`` is set."""
        end = self.now + seconds - 1e-9
        while self.now < end:
            self.now = round(self.now + TICK, 6)
            before = len(self.sent)
            self.scheduler.run_due(self.now)
            if answer is not None and len(self.sent) > before:
                self.monitor.response(self.sent[-1], answer == "healthy", reason, self.now)

    def answer(self, health: str = "healthy", reason: str = "") -> bool:
        return self.monitor.response(self.sent[-1], health == "healthy", reason, self.now)

    def kinds(self, kind: EventKind) -> List[MonitorEvent]:
        return [e for e in self.events if e.kind == kind]


class TestRegistration(testtools.TestCase):

    def test_register_grants_clamped_interval_and_emits(self) -> None:
        h = Harness(HeartbeatPolicy(min_interval_ms=200, max_interval_ms=5000))
        self.assertEqual(200, h.register(100))
        self.assertEqual(GuestState.HEALTHY, h.monitor.state)
        self.assertEqual(5000, h.monitor.register(60000, h.now))
        self.assertEqual([EventKind.REGISTERED, EventKind.REGISTERED], [e.kind for e in h.events])

    def test_first_challenge_at_once_then_every_interval(self) -> None:
        h = Harness()
        h.register(100)
        h.scheduler.run_due(h.now)
        self.assertEqual(1, len(h.sent))
        h.answer()
        h.run(1.0, answer="healthy")
        # One challenge per 100 ms, on a fixed cadence, each with a fresh 16-hex-digit nonce.
        self.assertEqual(11, len(h.sent))
        self.assertEqual(len(h.sent), len(set(h.sent)))
        self.assertTrue(all(len(n) == 16 and int(n, 16) >= 0 for n in h.sent))
        self.assertEqual([], h.kinds(EventKind.FAULT))
        self.assertEqual(11, h.monitor.stats.responses)

    def test_spread_first_challenge_within_one_interval(self) -> None:
        for _ in range(50):
            due = HeartbeatPolicy(spread=True).first_due(10.0, 100)
            self.assertTrue(10.0 <= due < 10.1, due)

    def test_unregistered_guest_gets_no_challenge(self) -> None:
        h = Harness()
        h.scheduler.schedule(h.monitor)
        h.run(1.0)
        self.assertEqual([], h.sent)
        self.assertEqual(GuestState.UNREGISTERED, h.monitor.state)


class TestFaults(testtools.TestCase):

    def test_miss_raises_one_fault_and_fails(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.1, answer="healthy")
        h.run(1.0)  # the guest hangs: ten challenges unanswered
        faults = h.kinds(EventKind.FAULT)
        self.assertEqual(1, len(faults))
        self.assertEqual(hm.MISSED, faults[0].fault_kind)
        self.assertEqual(GuestState.FAILED, h.monitor.state)
        self.assertEqual(faults[0].incident_id, h.monitor.incident_id)
        self.assertEqual(100, faults[0].interval_ms)
        self.assertEqual(1, faults[0].misses)

    def test_detection_within_two_intervals(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.5, answer="healthy")
        hung_at = h.now
        h.run(0.5)
        fault = h.kinds(EventKind.FAULT)[0]
        self.assertLessEqual(fault.at - hung_at, 0.2 + TICK)

    def test_threshold_above_one(self) -> None:
        h = Harness(HeartbeatPolicy(miss_threshold=3))
        h.register(100)
        h.run(0.1, answer="healthy")
        h.run(0.35)  # hung since the challenge at 0.2: misses at 0.3 and 0.4, not yet a fault
        self.assertEqual(2, h.monitor.stats.misses)
        self.assertEqual([], h.kinds(EventKind.FAULT))
        self.assertEqual(GuestState.HEALTHY, h.monitor.state)
        h.run(0.1)
        faults = h.kinds(EventKind.FAULT)
        self.assertEqual(1, len(faults))
        self.assertEqual(3, faults[0].misses)

    def test_answer_resets_miss_count(self) -> None:
        h = Harness(HeartbeatPolicy(miss_threshold=2))
        h.register(100)
        for _ in range(5):
            h.run(0.1)  # one miss ...
            h.answer()  # ... then an answer: never two in a row
            h.run(0.1)
            h.answer()
        self.assertEqual([], h.kinds(EventKind.FAULT))

    def test_unhealthy_raises_once_and_recovers_with_same_incident(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3, answer="unhealthy", reason="db down")
        faults = h.kinds(EventKind.FAULT)
        self.assertEqual(1, len(faults))
        self.assertEqual((hm.UNHEALTHY, "db down"), (faults[0].fault_kind, faults[0].reason))
        self.assertEqual(GuestState.UNHEALTHY, h.monitor.state)
        h.run(0.2, answer="healthy")
        recovered = h.kinds(EventKind.RECOVERED)
        self.assertEqual(1, len(recovered))
        self.assertEqual(faults[0].incident_id, recovered[0].incident_id)
        self.assertEqual(GuestState.HEALTHY, h.monitor.state)
        self.assertIsNone(h.monitor.incident_id)

    def test_missed_then_answer_recovers_same_incident(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.5)
        fault = h.kinds(EventKind.FAULT)[0]
        h.answer()
        self.assertEqual([fault.incident_id], [e.incident_id for e in h.kinds(EventKind.RECOVERED)])
        self.assertEqual(GuestState.HEALTHY, h.monitor.state)

    def test_failed_then_unhealthy_is_a_new_incident(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3)
        missed = h.kinds(EventKind.FAULT)[0]
        h.answer("unhealthy", "disk full")
        faults = h.kinds(EventKind.FAULT)
        self.assertEqual(2, len(faults))
        self.assertEqual(missed.incident_id, h.kinds(EventKind.RECOVERED)[0].incident_id)
        self.assertNotEqual(missed.incident_id, faults[1].incident_id)
        self.assertEqual(hm.UNHEALTHY, faults[1].fault_kind)

    def test_unhealthy_then_missed_clears_first(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.2, answer="unhealthy")
        unhealthy = h.kinds(EventKind.FAULT)[0]
        h.run(0.3)
        kinds = [(e.kind, e.fault_kind) for e in h.events if e.kind != EventKind.REGISTERED]
        self.assertEqual([(EventKind.FAULT, hm.UNHEALTHY), (EventKind.RECOVERED, hm.UNHEALTHY),
                          (EventKind.FAULT, hm.MISSED)], kinds)
        self.assertEqual(unhealthy.incident_id, h.kinds(EventKind.RECOVERED)[0].incident_id)
        self.assertEqual(GuestState.FAILED, h.monitor.state)


class TestAnswers(testtools.TestCase):

    def test_wrong_and_late_nonces_are_ignored(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.1)
        old = h.sent[-1]
        h.run(0.1)  # old one missed (fault), a new one is open
        self.assertFalse(h.monitor.response(old, True, "", h.now))
        self.assertFalse(h.monitor.response("0123456789abcdef", True, "", h.now))
        self.assertEqual(GuestState.FAILED, h.monitor.state)
        self.assertEqual([], h.kinds(EventKind.RECOVERED))
        self.assertEqual(2, h.monitor.stats.late_responses)
        self.assertTrue(h.answer())
        self.assertFalse(h.answer())  # a duplicate of a valid answer is late too

    def test_answer_after_the_next_challenge_is_a_miss(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.1)
        first = h.sent[-1]
        h.run(0.1)
        self.assertEqual(1, len(h.kinds(EventKind.FAULT)))
        self.assertFalse(h.monitor.response(first, True, "", h.now))

    def test_rtt_recorded(self) -> None:
        h = Harness()
        h.register(100)
        h.run(TICK)
        h.now += 0.004
        h.answer()
        self.assertAlmostEqual(0.004 + TICK, h.monitor.stats.last_rtt + TICK, places=6)


class TestLifecycle(testtools.TestCase):

    def test_exit_clears_fault_and_stops(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3)
        self.assertEqual(GuestState.FAILED, h.monitor.state)
        h.monitor.exit("agent stopping", h.now)
        self.assertEqual(GuestState.EXITED, h.monitor.state)
        self.assertIsNone(h.monitor.incident_id)
        sent = len(h.sent)
        h.run(1.0)
        self.assertEqual(sent, len(h.sent))
        self.assertEqual("agent stopping", h.kinds(EventKind.EXITED)[0].reason)
        self.assertEqual(1, len(h.kinds(EventKind.FAULT)))

    def test_suspend_resume_no_fault(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3, answer="healthy")
        h.run(0.05)  # a challenge is open when the domain pauses
        h.monitor.suspend(h.now)
        sent = len(h.sent)
        h.run(2.0)
        self.assertEqual(sent, len(h.sent))
        self.assertEqual(GuestState.SUSPENDED, h.monitor.state)
        h.monitor.resume(h.now)
        h.scheduler.schedule(h.monitor)
        h.run(1.0, answer="healthy")
        self.assertEqual([], h.kinds(EventKind.FAULT))
        self.assertEqual(GuestState.HEALTHY, h.monitor.state)

    def test_suspended_fault_stays_open(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3)
        incident = h.monitor.incident_id
        h.monitor.suspend(h.now)
        h.monitor.resume(h.now)
        self.assertEqual((GuestState.FAILED, incident), (h.monitor.state, h.monitor.incident_id))

    def test_register_while_suspended_waits_for_resume(self) -> None:
        h = Harness()
        h.monitor.suspend(h.now)
        h.register(100)
        self.assertEqual(GuestState.SUSPENDED, h.monitor.state)
        h.run(0.5)
        self.assertEqual([], h.sent)
        h.monitor.resume(h.now)
        h.scheduler.schedule(h.monitor)
        h.run(0.05)
        self.assertEqual(GuestState.HEALTHY, h.monitor.state)
        self.assertEqual(1, len(h.sent))

    def test_reregistration_keeps_open_fault(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3)
        incident = h.monitor.incident_id
        h.monitor.unregister()  # a new hello_ack
        self.assertEqual(GuestState.FAILED, h.monitor.state)
        h.register(200)
        self.assertEqual((GuestState.FAILED, incident), (h.monitor.state, h.monitor.incident_id))
        h.run(0.05)
        h.answer()
        self.assertEqual([incident], [e.incident_id for e in h.kinds(EventKind.RECOVERED)])
        self.assertEqual(1, len(h.kinds(EventKind.FAULT)))

    def test_unregister_stops_challenges_without_fault(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.05)
        h.monitor.unregister()
        h.run(1.0)
        self.assertEqual(GuestState.UNREGISTERED, h.monitor.state)
        self.assertEqual([], h.kinds(EventKind.FAULT))
        self.assertEqual(1, len(h.sent))


class TestRestore(testtools.TestCase):

    def test_restored_healthy_guest_gets_one_interval_of_grace(self) -> None:
        h = Harness()
        h.monitor.restore(100, None, None, "", h.now)
        h.scheduler.schedule(h.monitor)
        self.assertEqual(GuestState.HEALTHY, h.monitor.state)
        h.run(0.09)
        self.assertEqual([], h.sent)  # no challenge before the new session can answer
        h.run(0.5, answer="healthy")
        self.assertEqual([], h.kinds(EventKind.FAULT))

    def test_restore_grace_covers_the_guests_reconnection(self) -> None:
        h = Harness()
        h.monitor.restore(100, None, None, "", h.now, grace_s=3.0)
        h.scheduler.schedule(h.monitor)
        h.run(2.95)
        self.assertEqual([], h.sent)
        h.run(0.1)
        self.assertEqual(1, len(h.sent))

    def test_registration_during_grace_starts_at_once(self) -> None:
        h = Harness()
        h.monitor.restore(100, "inc", hm.MISSED, "", h.now, grace_s=3.0)
        h.scheduler.schedule(h.monitor)
        h.run(0.5)
        h.monitor.unregister()  # the guest answered hello ...
        h.register(100)  # ... and registered again
        h.run(0.05, answer="healthy")
        self.assertEqual(["inc"], [e.incident_id for e in h.kinds(EventKind.RECOVERED)])

    def test_restored_hung_guest_faults_again_with_same_incident(self) -> None:
        h = Harness()
        h.monitor.restore(100, "inc-1", hm.MISSED, "no answer", h.now)
        h.scheduler.schedule(h.monitor)
        self.assertEqual(GuestState.FAILED, h.monitor.state)
        h.run(1.0)
        faults = h.kinds(EventKind.FAULT)
        self.assertEqual(1, len(faults))  # once, not per miss
        self.assertEqual(("inc-1", hm.MISSED), (faults[0].incident_id, faults[0].fault_kind))
        h.answer()
        self.assertEqual(["inc-1"], [e.incident_id for e in h.kinds(EventKind.RECOVERED)])

    def test_restored_fault_recovers_when_guest_answers(self) -> None:
        h = Harness()
        h.monitor.restore(100, "inc-2", hm.MISSED, "no answer", h.now)
        h.scheduler.schedule(h.monitor)
        h.run(0.5, answer="healthy")
        self.assertEqual([], h.kinds(EventKind.FAULT))
        self.assertEqual(["inc-2"], [e.incident_id for e in h.kinds(EventKind.RECOVERED)])

    def test_restored_unhealthy_reconfirmed_once(self) -> None:
        h = Harness()
        h.monitor.restore(100, "inc-3", hm.UNHEALTHY, "db down", h.now)
        h.scheduler.schedule(h.monitor)
        h.run(0.5, answer="unhealthy", reason="db down")
        faults = h.kinds(EventKind.FAULT)
        self.assertEqual([("inc-3", hm.UNHEALTHY)], [(f.incident_id, f.fault_kind) for f in faults])

    def test_persistent_state_of_suspended_guest(self) -> None:
        h = Harness()
        h.register(100)
        h.monitor.suspend(h.now)
        self.assertEqual(GuestState.HEALTHY, h.monitor.persistent_state)


class TestHostStall(testtools.TestCase):

    def _open_challenge(self) -> Harness:
        h = Harness(HeartbeatPolicy(late_s=0.02))
        h.register(100)
        h.run(0.15, answer="healthy")
        h.run(0.06)  # the challenge due at 0.2 is out and not answered yet
        self.assertEqual(3, len(h.sent))
        return h

    def test_late_tick_defers_the_verdict_once(self) -> None:
        h = self._open_challenge()
        nonce = h.sent[-1]
        # The loop stalls 150 ms past the next due time; the answer is waiting unread.
        h.now += 0.19
        h.scheduler.run_due(h.now)
        self.assertEqual([], h.kinds(EventKind.FAULT))
        self.assertEqual(3, len(h.sent))
        self.assertTrue(h.monitor.response(nonce, True, "", h.now + 0.001))
        h.run(0.5, answer="healthy")
        self.assertEqual([], h.kinds(EventKind.FAULT))

    def test_late_tick_still_detects_a_hang(self) -> None:
        h = self._open_challenge()
        h.now += 0.19
        h.scheduler.run_due(h.now)
        h.run(TICK)
        self.assertEqual(1, len(h.kinds(EventKind.FAULT)))


class TestNonces(testtools.TestCase):

    def test_nonces_are_fresh_hex_tokens(self) -> None:
        nonces = [hm.new_nonce() for _ in range(3000)]
        self.assertEqual(3000, len(set(nonces)))
        self.assertTrue(all(len(n) == 16 for n in nonces))
        int("".join(nonces), 16)


class TestHoldVerdicts(testtools.TestCase):
    """A dropped channel gives discovery a grace period before misses count."""

    def test_no_miss_counted_while_held_then_fault(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3, answer="healthy")
        h.monitor.hold_verdicts(h.now + 0.5)
        h.run(0.45)  # silent, but held
        self.assertEqual([], h.kinds(EventKind.FAULT))
        self.assertEqual(0, h.monitor.stats.misses)
        h.run(0.25)  # the hold is over: the first unanswered challenge is a miss
        self.assertEqual(1, len(h.kinds(EventKind.FAULT)))

    def test_suspend_during_hold_means_no_fault(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3, answer="healthy")
        h.monitor.hold_verdicts(h.now + 0.5)
        h.run(0.2)
        h.monitor.suspend(h.now)  # discovery: the domain is paused
        h.run(1.0)
        self.assertEqual([], h.kinds(EventKind.FAULT))
        self.assertEqual(GuestState.SUSPENDED, h.monitor.state)


    def test_libvirt_grace_outlasts_novas_destroy(self) -> None:
        # Nova's stop and reboots destroy the domain: on the real cloud (tests/cloud/test_lifecycle.py)
        # libvirt's lifecycle event came 1.2-1.8 s after the channel socket's end, and the grace of
        # 0.3 s then raised a false "missed" fault for each. The grace libvirt discovery gets must cover it.
        settings = loader.with_discovery_grace(ChannelSettings(), _Unset(), _Latency(libvirt.EVENT_LATENCY_S))
        h = Harness()
        h.register(500)
        h.run(1.0, answer="healthy")
        h.monitor.hold_verdicts(h.now + settings.channel_loss_grace_s)
        h.run(2.5)  # QEMU gone, the event not yet here: nothing counted
        self.assertEqual([], h.kinds(EventKind.FAULT))
        self.assertEqual(0, h.monitor.stats.misses)
        # A QEMU that vanished under a running domain is still a fault, once the grace is over.
        h.run(settings.channel_loss_grace_s)
        self.assertEqual(1, len(h.kinds(EventKind.FAULT)))


class _Unset:
    """[compute] options with channel_loss_grace_s unset."""

    channel_loss_grace_s = None


class _Latency:
    """A discovery driver that only tells its event latency."""

    def __init__(self, latency_s: float) -> None:
        self.event_latency_s = latency_s


class TestReregistration(testtools.TestCase):
    """An init while registered (protocol.rst, Registration): nothing counted is forgiven."""

    def reinit_every(self, h: Harness, period: float, seconds: float, interval_ms: int = 100) -> None:
        """Advance ``seconds`` without answering, re-registering every ``period``."""
        end = h.now + seconds - 1e-9
        while h.now < end:
            h.run(period)
            h.monitor.register(interval_ms, h.now)
            h.scheduler.schedule(h.monitor)

    def test_reinit_keeps_counted_misses(self) -> None:
        h = Harness(HeartbeatPolicy(miss_threshold=3))
        h.register(100)
        h.run(0.1, answer="healthy")
        h.run(0.35)  # two misses counted, the third challenge open
        self.assertEqual(2, h.monitor.stats.misses)
        h.register(100)
        h.run(0.1)
        faults = h.kinds(EventKind.FAULT)
        self.assertEqual(1, len(faults))
        self.assertEqual(3, faults[0].misses)

    def test_reinit_every_interval_cannot_hide_a_hang(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.5, answer="healthy")
        hung_at = h.now
        self.reinit_every(h, 0.05, 1.0)
        fault = h.kinds(EventKind.FAULT)[0]
        self.assertLessEqual(fault.at - hung_at, 0.2 + TICK)
        self.assertEqual(GuestState.FAILED, h.monitor.state)

    def test_reinit_just_before_each_deadline_cannot_hide_a_hang(self) -> None:
        h = Harness(HeartbeatPolicy(miss_threshold=2))
        h.register(100)
        h.run(0.3, answer="healthy")
        hung_at = h.now
        self.reinit_every(h, 0.09, 1.0)
        self.assertLessEqual(h.kinds(EventKind.FAULT)[0].at - hung_at, 0.3 + TICK)

    def test_reinit_never_postpones_the_open_challenge(self) -> None:
        h = Harness()
        h.register(100)
        h.scheduler.run_due(h.now)
        due = h.monitor.next_due
        h.run(0.05)
        self.assertEqual(1000, h.monitor.register(1000, h.now))  # a longer interval: for later challenges
        self.assertEqual(due, h.monitor.next_due)
        h.run(0.05)
        self.assertEqual(1, len(h.kinds(EventKind.FAULT)))  # judged at the old deadline
        self.assertEqual(2, len(h.sent))
        h.run(0.95)
        self.assertEqual(2, len(h.sent))  # the next one a whole new interval later
        h.run(0.05)
        self.assertEqual(3, len(h.sent))

    def test_shorter_interval_brings_the_deadline_forward(self) -> None:
        h = Harness()
        h.register(1000)
        h.scheduler.run_due(h.now)
        h.run(0.1)
        h.monitor.register(100, h.now)
        h.scheduler.schedule(h.monitor)
        self.assertAlmostEqual(h.now + 0.1, h.monitor.next_due)
        h.run(0.1)
        self.assertEqual(1, len(h.kinds(EventKind.FAULT)))

    def test_same_interval_emits_nothing_new_interval_emits_once(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3, answer="healthy")
        for _ in range(20):
            h.register(100)
            h.register(50)  # clamped to the same 100 ms
        self.assertEqual([EventKind.REGISTERED], [e.kind for e in h.events])
        h.register(200)
        self.assertEqual([EventKind.REGISTERED] * 2, [e.kind for e in h.events])
        self.assertEqual(200, h.events[-1].interval_ms)

    def test_reinit_while_failed_keeps_the_incident(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3)
        incident = h.monitor.incident_id
        h.register(100)
        h.run(0.3)
        self.assertEqual((GuestState.FAILED, incident), (h.monitor.state, h.monitor.incident_id))
        self.assertEqual(1, len(h.kinds(EventKind.FAULT)))
        h.run(0.1, answer="healthy")
        self.assertEqual([incident], [e.incident_id for e in h.kinds(EventKind.RECOVERED)])

    def test_reinit_while_suspended_waits_for_resume(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3, answer="healthy")
        h.monitor.suspend(h.now)
        h.register(200)
        h.run(1.0)
        self.assertEqual((GuestState.SUSPENDED, 4), (h.monitor.state, len(h.sent)))
        h.monitor.resume(h.now)
        h.scheduler.schedule(h.monitor)
        h.run(0.5, answer="healthy")
        self.assertEqual([], h.kinds(EventKind.FAULT))
        self.assertEqual(200, h.monitor.interval_ms)

    def test_registration_ends_only_by_exit_or_unregister(self) -> None:
        h = Harness()
        self.assertFalse(h.monitor.registered)
        h.register(100)
        self.assertTrue(h.monitor.registered)
        h.monitor.suspend(h.now)
        h.monitor.resume(h.now)
        self.assertTrue(h.monitor.registered)
        h.monitor.exit("bye", h.now)
        self.assertFalse(h.monitor.registered)
        h.register(100)  # after exit, init is a fresh registration
        self.assertEqual([EventKind.REGISTERED, EventKind.EXITED, EventKind.REGISTERED], [e.kind for e in h.events])
        h.monitor.unregister()
        self.assertFalse(h.monitor.registered)
        h.monitor.restore(100, None, None, "", h.now)
        self.assertTrue(h.monitor.registered)

    def test_init_after_unregister_starts_afresh(self) -> None:
        h = Harness(HeartbeatPolicy(miss_threshold=3))
        h.register(100)
        h.run(0.1, answer="healthy")
        h.run(0.25)  # two misses
        h.monitor.unregister()  # the first hello_ack of a new connection
        h.register(100)
        h.run(0.25)  # misses from the new registration only: 2 more, no fault yet
        self.assertEqual([], h.kinds(EventKind.FAULT))

    def test_unregistered_open_fault_is_not_challenged_after_resume(self) -> None:
        h = Harness()
        h.register(100)
        h.run(0.3)
        h.monitor.unregister()  # the fault stays open, the guest is not registered
        h.monitor.suspend(h.now)
        h.monitor.resume(h.now)
        h.scheduler.schedule(h.monitor)
        sent = len(h.sent)
        h.run(1.0)
        self.assertEqual((GuestState.FAILED, sent), (h.monitor.state, len(h.sent)))
