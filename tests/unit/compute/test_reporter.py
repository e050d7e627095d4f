"""The reporter: ordered, retried, bounded reports to the controller."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict

import oslo_messaging
import testtools

from ha_guest.compute.reporter import MAX_REMOTE_ERRORS, Reporter
from ha_guest.rpc.errors import FaultRegistryFull, InvalidPayload
from tests.unit.compute.base import FakeController


def fault(uuid: str, incident: str = "i") -> Dict[str, Any]:
    return {"instance_uuid": uuid, "incident_id": incident}


class BlockingController(FakeController):
    """Holds every call until released, so tests can fill the queue."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def _call(self, name: str, payload: Dict[str, Any]) -> Any:
        self.release.wait(10)
        return super()._call(name, payload)


class TestReporter(testtools.TestCase):

    def make(self, api: FakeController, **kwargs: Any) -> Reporter:
        reporter = Reporter(api, retry_min_s=0.001, retry_max_s=0.01, **kwargs)
        reporter.start()
        self.addCleanup(reporter.stop, 0.5)
        return reporter

    def test_reports_in_order(self) -> None:
        api = FakeController()
        reporter = self.make(api)
        reporter.report_fault(fault("a"))
        reporter.report_recovery(fault("a"))
        reporter.report_exit({"instance_uuid": "a"})
        reporter.report_state({"instances": []})
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual(["report_fault", "report_recovery", "report_exit", "report_state"], api.names())
        self.assertEqual(4, reporter.counters["sent"])

    def test_retried_until_acknowledged_keeping_order(self) -> None:
        api = FakeController()
        api.failures = [oslo_messaging.MessagingTimeout("no controller")] * 5
        reporter = self.make(api)
        reporter.report_fault(fault("a", "1"))
        reporter.report_recovery(fault("a", "1"))
        reporter.report_fault(fault("a", "2"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual([("report_fault", "1"), ("report_recovery", "1"), ("report_fault", "2")],
                         [(name, p["incident_id"]) for name, p in api.calls])
        self.assertEqual(5, reporter.counters["attempts_failed"])
        self.assertEqual(8, api.attempts)

    def test_failed_state_report_is_not_retried(self) -> None:
        api = FakeController()
        api.failures = [oslo_messaging.MessageDeliveryFailure("down")]
        reporter = self.make(api)
        reporter.report_state({"instances": []})
        reporter.report_fault(fault("a"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual(["report_fault"], api.names())

    def test_refused_report_is_dropped_after_a_few_tries(self) -> None:
        api = FakeController()
        api.failures = [oslo_messaging.RemoteError("KeyError", "boom")] * MAX_REMOTE_ERRORS + \
            [FaultRegistryFull("full")] * MAX_REMOTE_ERRORS
        reporter = self.make(api)
        reporter.report_fault(fault("a", "1"))
        reporter.report_fault(fault("b", "2"))
        reporter.report_fault(fault("c", "3"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual([("report_fault", "3")], [(n, p["incident_id"]) for n, p in api.calls])
        self.assertEqual(2, reporter.counters["given_up"])

    def test_invalid_payload_dropped_at_once(self) -> None:
        api = FakeController()
        api.failures = [InvalidPayload("bad")]
        reporter = self.make(api)
        reporter.report_fault(fault("a"))
        reporter.report_fault(fault("b"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual(["b"], [p["instance_uuid"] for _, p in api.calls])
        self.assertEqual(2, api.attempts)

    def test_newer_state_report_replaces_queued_one(self) -> None:
        api = BlockingController()
        reporter = self.make(api)
        reporter.report_fault(fault("a"))  # in flight, blocked
        time.sleep(0.05)
        for n in range(3):
            reporter.report_state({"n": n})
        api.release.set()
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual([("report_fault", None), ("report_state", 2)],
                         [(name, p.get("n")) for name, p in api.calls])
        self.assertEqual(2, reporter.counters["state_superseded"])

    def test_full_queue_drops_state_reports_first(self) -> None:
        api = BlockingController()
        reporter = self.make(api, queue_size=3)
        reporter.report_fault(fault("x"))  # in flight
        time.sleep(0.05)
        reporter.report_state({"n": 1})
        reporter.report_fault(fault("a"))
        reporter.report_fault(fault("b"))
        reporter.report_fault(fault("c"))  # full: the state report goes
        self.assertEqual(1, reporter.counters["state_dropped"])
        reporter.report_state({"n": 2})  # full of faults: the new state report goes
        self.assertEqual(2, reporter.counters["state_dropped"])
        reporter.report_fault(fault("d"))  # full of faults: dropped, loudly
        self.assertEqual(1, reporter.counters["events_dropped"])
        api.release.set()
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual(["x", "a", "b", "c"], [p["instance_uuid"] for _, p in api.calls])

    def test_stop_flushes_briefly_then_gives_up(self) -> None:
        api = FakeController()
        api.failures = [oslo_messaging.MessagingTimeout("down")] * 1000
        reporter = Reporter(api, retry_min_s=0.01, retry_max_s=0.01)
        reporter.start()
        reporter.report_fault(fault("a"))
        reporter.report_fault(fault("b"))
        started = time.monotonic()
        reporter.stop(flush_timeout=0.2)
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual(2, reporter.counters["unsent_at_stop"])

    def test_stop_sends_what_is_queued(self) -> None:
        api = FakeController()
        reporter = Reporter(api)
        reporter.start()
        for name in "abc":
            reporter.report_exit({"instance_uuid": name})
        reporter.stop(flush_timeout=2.0)
        self.assertEqual(3, len(api.calls))
        self.assertEqual(0, reporter.pending())
