"""The compute agent's collector over a real ComputeManager with scripted guests on real sockets."""

from __future__ import annotations

import os

import testtools

from ha_guest.compute.guest_budget import GuestBudget
from ha_guest.conf import metrics as metrics_conf
from ha_guest.metrics import definitions
from ha_guest.metrics.compute import ComputeCollector
from ha_guest.protocol import heartbeat
from ha_guest.testing import wait_for
from tests.unit.compute.test_manager import TIMEOUT, A, ManagerTestCase
from tests.unit.metrics.scrape import scrape, value

C = "ha_guest_compute_"
B = "22222222-2222-4222-8222-222222222222"


class TestComputeCollector(ManagerTestCase):

    def setUp(self) -> None:
        super().setUp()
        metrics_conf.register_opts(self.conf)
        self.conf.set_override("listen_port", 0, "metrics")

    def scrape(self, manager: object) -> dict:
        text, samples = scrape([ComputeCollector(manager)])
        self.text = text
        return samples

    def test_a_miss_fault_and_its_recovery_move_the_counters(self) -> None:
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"))
        manager, _ = self.start_manager()
        manager.channel_added(A, guest.path)
        wait_for(lambda: manager.instance_stats(A).responses >= 3, TIMEOUT, message="answers")
        samples = self.scrape(manager)
        self.assertEqual(1, value(samples, C + "guests", state="healthy"))
        self.assertEqual(0, value(samples, C + "guests", state="failed"))
        self.assertEqual(1, value(samples, C + "channels_connected"))
        answered = value(samples, C + "answers_total", health="healthy")
        self.assertGreaterEqual(answered, 3)
        self.assertGreaterEqual(value(samples, C + "challenges_total"), answered)
        # Every answer to the open challenge is in the latency histogram.
        self.assertEqual(answered, value(samples, C + "answer_latency_seconds_count"))
        self.assertEqual(answered, value(samples, C + "answer_latency_seconds_bucket", le="+Inf"))
        self.assertEqual(0, value(samples, C + "faults_total", kind="missed"))

        self.guests.set(guest, answer=False)
        wait_for(lambda: self.reports("report_fault"), TIMEOUT, message="a fault")
        samples = self.scrape(manager)
        self.assertEqual(1, value(samples, C + "guests", state="failed"))
        self.assertEqual(0, value(samples, C + "guests", state="healthy"))
        self.assertGreaterEqual(value(samples, C + "misses_total"), 1)
        self.assertEqual(1, value(samples, C + "faults_total", kind="missed"))
        self.assertEqual(0, value(samples, C + "recoveries_total", kind="missed"))

        self.guests.set(guest, answer=True)
        wait_for(lambda: self.reports("report_recovery"), TIMEOUT, message="a recovery")
        samples = self.scrape(manager)
        self.assertEqual(1, value(samples, C + "guests", state="healthy"))
        self.assertEqual(1, value(samples, C + "recoveries_total", kind="missed"))
        # The reporter's side: the fault and the recovery were acknowledged, each call timed.
        wait_for(lambda: value(self.scrape(manager), C + "reports_sent_total") >= 2, TIMEOUT, message="acks")
        samples = self.scrape(manager)
        self.assertGreaterEqual(value(samples, C + "report_latency_seconds_count"), 2)
        self.assertEqual(self.conf.compute.report_queue_size, value(samples, C + "report_queue_capacity"))
        self.assertEqual(0, value(samples, C + "reports_dropped_total", reason="event_queue_full"))

    def test_unhealthy_answers_and_a_removed_instance(self) -> None:
        guest = self.guests.guest(os.path.join(self.tmp, "b.sock"), health=heartbeat.UNHEALTHY, reason="disk")
        manager, _ = self.start_manager()
        manager.channel_added(B, guest.path)
        wait_for(lambda: self.reports("report_fault"), TIMEOUT, message="an unhealthy fault")
        wait_for(lambda: manager.instance_stats(B).responses >= 2, TIMEOUT, message="answers")
        samples = self.scrape(manager)
        self.assertEqual(1, value(samples, C + "guests", state="unhealthy"))
        self.assertEqual(1, value(samples, C + "faults_total", kind="unhealthy"))
        unhealthy = value(samples, C + "answers_total", health="unhealthy")
        self.assertGreaterEqual(unhealthy, 2)
        self.assertEqual(0, value(samples, C + "answers_total", health="healthy"))
        challenges = value(samples, C + "challenges_total")

        manager.channel_removed(B)
        manager.call(lambda: None)
        samples = self.scrape(manager)
        # The instance is gone, its counts stay: counters never go down.
        self.assertEqual(0, sum(value(samples, C + "guests", state=s) for s in definitions.GUEST_STATES))
        self.assertGreaterEqual(value(samples, C + "challenges_total"), challenges)
        self.assertGreaterEqual(value(samples, C + "answers_total", health="unhealthy"), unhealthy)

    def test_every_defined_family_is_exported_and_nothing_else(self) -> None:
        manager, _ = self.start_manager()
        samples = self.scrape(manager)
        exported = {name for name, _ in samples}
        self.assertEqual(set(), exported - definitions.series_names(definitions.COMPUTE))
        self.assertEqual(set(), definitions.series_names(definitions.COMPUTE) - exported)
        for metric in definitions.COMPUTE:  # every label value defined shows up, at zero if need be
            for label, values in metric.labels.items():
                for label_value in values:
                    self.assertIn(label_value, {dict(labels).get(label) for name, labels in samples
                                                if name == metric.series_names[0]}, metric.name)

    def test_no_latency_histogram_without_a_metrics_port(self) -> None:
        self.conf.clear_override("listen_port", "metrics")
        manager, _ = self.start_manager()
        self.assertIsNone(manager.totals.latency)
        self.scrape(manager)
        self.assertNotIn(C + "answer_latency_seconds", self.text)


class TestBudgetReason(testtools.TestCase):

    def test_lines_exceeded_says_which_budget_refused(self) -> None:
        budget = GuestBudget(byte_rate=1000, byte_burst=1000, line_rate=10, line_burst=10, now=0.0)
        self.assertFalse(budget.charge(100, 11, 0.0))
        self.assertTrue(budget.lines_exceeded)
        budget = GuestBudget(byte_rate=1000, byte_burst=1000, line_rate=10, line_burst=10, now=0.0)
        self.assertFalse(budget.charge(2000, 1, 0.0))
        self.assertFalse(budget.lines_exceeded)
