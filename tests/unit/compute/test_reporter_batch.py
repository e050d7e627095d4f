"""The reporter in batches (controller API 1.2), its fallback, on_sent and our own call deadline."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional

import oslo_messaging
import testtools

from ha_guest.compute.reporter import MAX_REMOTE_ERRORS, Reporter
from ha_guest.compute.reporter_calls import CallsStuck, DeadlineCaller, DeadlineMissed
from ha_guest.rpc.errors import HAGuestRPCError
from tests.unit.compute.base import FakeController

HOST = "cmp-1"


def fault(uuid: str, incident: str = "inc") -> Dict[str, Any]:
    return {"instance_uuid": uuid, "host": HOST, "incident_id": incident, "kind": "missed", "reason": "",
            "detected_at": 1.0, "interval_ms": 100, "misses": 3}


def recovery(uuid: str, incident: str = "inc") -> Dict[str, Any]:
    return {"instance_uuid": uuid, "host": HOST, "incident_id": incident, "recovered_at": 2.0}


def exit_report(uuid: str) -> Dict[str, Any]:
    return {"instance_uuid": uuid, "host": HOST, "reason": "bye", "at": 3.0}


class BatchController(FakeController):
    """A 1.2 controller: report_batch answers per item; ``refuse`` items get an error."""

    def __init__(self, cap: str = "1.2") -> None:
        super().__init__()
        self.cap = cap
        self.batches: List[List[Dict[str, Any]]] = []
        self.refuse: set[str] = set()
        self.gate: Optional[threading.Event] = None  # when set: each call waits for it
        self.seen: set[tuple[str, str]] = set()
        self.closed = False
        self.timeouts: List[Any] = []

    def can_send_version(self, version: str) -> bool:
        return tuple(map(int, version.split("."))) <= tuple(map(int, self.cap.split(".")))

    def report_batch(self, ctxt: Any, reports: List[Dict[str, Any]], timeout: Any = None) -> Dict[str, Any]:
        if self.gate is not None:
            self.gate.wait(10)
        self.attempts += 1
        self.timeouts.append(timeout)
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append(reports)
        results = []
        for item in reports:
            payload = item["payload"]
            self.calls.append(("report_" + item["type"], payload))
            if payload["instance_uuid"] in self.refuse:
                results.append({"error": "InvalidPayload: refused"})
                continue
            key = (item["type"], payload.get("incident_id") or payload["instance_uuid"])
            results.append({"duplicate": key in self.seen})
            self.seen.add(key)
        return {"results": results}

    def close(self) -> None:
        self.closed = True


class TestBatches(testtools.TestCase):

    def make(self, api: Any, **kwargs: Any) -> Reporter:
        kwargs.setdefault("call_timeout_s", 1.0)
        reporter = Reporter(api, retry_min_s=0.001, retry_max_s=0.01, **kwargs)
        reporter.start()
        self.addCleanup(reporter.stop, 0.5)
        return reporter

    def test_everything_pending_in_one_call_in_order_state_between(self) -> None:
        api = BatchController()
        api.gate = threading.Event()
        reporter = self.make(api)
        reporter.report_fault(fault("x"))  # in flight, held by the gate
        time.sleep(0.05)
        for n in range(5):
            reporter.report_fault(fault("a%d" % n))
        reporter.report_recovery(recovery("a0"))
        reporter.report_state({"instances": []})
        reporter.report_exit(exit_report("a1"))
        api.gate.set()
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual([["x"], ["a0", "a1", "a2", "a3", "a4", "a0"], ["a1"]],
                         [[item["payload"]["instance_uuid"] for item in b] for b in api.batches])
        self.assertEqual(["report_fault"] * 6 + ["report_recovery", "report_state", "report_exit"], api.names())
        self.assertEqual(3, reporter.counters["batches"])
        self.assertEqual(8, reporter.counters["sent"] - 1)  # 8 events and one state report

    def test_an_older_controller_gets_the_1_0_methods_at_once(self) -> None:
        api = BatchController()  # its cap allows 1.2, but the controller that answers is older
        api.failures = [oslo_messaging.RemoteError("UnsupportedVersion", "Endpoint does not support RPC version 1.2")]
        reporter = self.make(api)
        reporter.report_fault(fault("a"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual(2, api.attempts)  # one refused batch, then the fault on its own
        self.assertEqual([], api.batches)
        reporter.report_fault(fault("b"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual(["report_fault", "report_fault"], api.names())
        self.assertEqual([], api.batches)
        self.assertEqual(0, reporter.counters["given_up"])

    def test_batch_size_bound(self) -> None:
        api = BatchController()
        api.gate = threading.Event()
        reporter = self.make(api, batch_size=4)
        for n in range(10):
            reporter.report_fault(fault("f%d" % n))
        api.gate.set()
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual([4, 4, 2], [len(b) for b in api.batches])
        self.assertEqual(["f%d" % n for n in range(10)], [p["instance_uuid"] for _, p in api.calls])

    def test_retried_until_acknowledged_joined_by_newer_reports(self) -> None:
        api = BatchController()
        api.failures = [oslo_messaging.MessagingTimeout("no controller")] * 3
        reporter = Reporter(api, retry_min_s=0.1, retry_max_s=0.1)
        reporter.start()
        self.addCleanup(reporter.stop, 0.5)
        reporter.report_fault(fault("a"))
        time.sleep(0.05)  # the first attempt failed meanwhile
        reporter.report_fault(fault("b"))
        reporter.report_recovery(recovery("a"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual([["a", "b", "a"]], [[i["payload"]["instance_uuid"] for i in b] for b in api.batches])
        self.assertEqual(3, reporter.counters["attempts_failed"])
        self.assertEqual([2.0] * 4, api.timeouts)  # our call timeout (the default), every attempt

    def test_refused_item_dropped_others_acknowledged(self) -> None:
        sent: List[tuple[str, str, Dict[str, Any]]] = []
        api = BatchController()
        api.refuse = {"bad"}
        reporter = self.make(api, on_sent=lambda method, payload, result: sent.append(
            (method, payload["instance_uuid"], result)))
        reporter.report_fault(fault("a"))
        reporter.report_fault(fault("bad"))
        reporter.report_fault(dict(fault("c"), kind="late"))  # cannot be sent at all: dropped before
        reporter.report_fault(fault("a"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual(2, reporter.counters["given_up"])
        self.assertEqual([("report_fault", "a", {"duplicate": False}), ("report_fault", "a", {"duplicate": True})],
                         sent)

    def test_on_sent_from_the_reporter_thread_after_the_ack(self) -> None:
        threads: List[str] = []
        api = BatchController()
        reporter = self.make(api, on_sent=lambda *args: threads.append(threading.current_thread().name))
        reporter.report_fault(fault("a"))
        reporter.report_exit(exit_report("a"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual(["ha-guest-reporter"] * 2, threads)

    def test_failing_on_sent_does_not_stop_reporting(self) -> None:
        api = BatchController()

        def boom(*args: Any) -> None:
            raise RuntimeError("callback bug")

        reporter = self.make(api, on_sent=boom)
        reporter.report_fault(fault("a"))
        reporter.report_fault(fault("b"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual(2, reporter.counters["sent"])

    def test_batch_failing_at_the_controller_goes_one_by_one(self) -> None:
        api = BatchController()
        api.failures = [oslo_messaging.RemoteError("KeyError", "bug")] * MAX_REMOTE_ERRORS + \
            [HAGuestRPCError("x")] * MAX_REMOTE_ERRORS  # then the first report alone fails as often
        sent: List[str] = []
        reporter = self.make(api, on_sent=lambda m, payload, r: sent.append(payload["instance_uuid"]))
        reporter.report_fault(fault("a"))
        reporter.report_fault(fault("b"))
        reporter.report_fault(fault("c"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual(["b", "c"], sent)
        self.assertEqual(1, reporter.counters["given_up"])

    def test_version_cap_below_1_2_sends_one_by_one(self) -> None:
        api = BatchController(cap="1.1")
        sent: List[str] = []
        reporter = self.make(api, on_sent=lambda method, payload, result: sent.append(method))
        reporter.report_fault(fault("a"))
        reporter.report_recovery(recovery("a"))
        reporter.report_exit(exit_report("a"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual([], api.batches)
        self.assertEqual(["report_fault", "report_recovery", "report_exit"], api.names())
        self.assertEqual(["report_fault", "report_recovery", "report_exit"], sent)

    def test_a_client_without_report_batch_gets_the_1_0_methods(self) -> None:
        api = FakeController()
        sent: List[Dict[str, Any]] = []
        reporter = self.make(api, on_sent=lambda method, payload, result: sent.append(result))
        reporter.report_fault(fault("a"))
        self.assertTrue(reporter.wait_idle(5))
        self.assertEqual(["report_fault"], api.names())
        self.assertEqual([{"duplicate": False}], sent)


class HangingController(BatchController):
    """Each client of a chain; the first ``hang`` calls on it never return until ``release``."""

    def __init__(self, hang: int, release: threading.Event, made: List["HangingController"]) -> None:
        super().__init__()
        self.hang = hang
        self.release = release
        self.made = made
        made.append(self)

    def report_batch(self, ctxt: Any, reports: List[Dict[str, Any]], timeout: Any = None) -> Dict[str, Any]:
        if self.hang:
            self.hang -= 1
            self.release.wait(10)
        return super().report_batch(ctxt, reports, timeout)

    def renewed(self) -> "HangingController":
        return HangingController(0, self.release, self.made)


class TestDeadline(testtools.TestCase):

    def test_stuck_call_abandoned_and_sent_again_on_a_fresh_client(self) -> None:
        release = threading.Event()
        made: List[HangingController] = []
        first = HangingController(1, release, made)
        sent: List[str] = []
        reporter = Reporter(first, retry_min_s=0.01, retry_max_s=0.01, call_timeout_s=0.1,
                            on_sent=lambda method, payload, result: sent.append(payload["instance_uuid"]))
        reporter.start()
        self.addCleanup(reporter.stop, 0.5)
        reporter.report_fault(fault("a"))
        reporter.report_fault(fault("b"))
        self.assertTrue(reporter.wait_idle(5))  # well before the stuck call returns
        self.assertEqual(["a", "b"], sent)
        self.assertEqual(2, len(made))
        self.assertIs(made[1], reporter.api)
        self.assertEqual(1, reporter.caller.counters["deadline_missed"])
        self.assertEqual(1, reporter.caller.stuck)
        self.assertFalse(first.closed)  # the caller's own client: never closed by the reporter
        release.set()
        for _ in range(200):
            if reporter.caller.stuck == 0:
                break
            time.sleep(0.01)
        self.assertEqual(0, reporter.caller.stuck)
        self.assertEqual(["a", "b"], sent)  # the late answer of the abandoned call is not counted

    def test_renewed_clients_closed_when_their_stuck_call_returns(self) -> None:
        release = threading.Event()
        made: List[HangingController] = []
        first = HangingController(1, release, made)
        caller = DeadlineCaller(first)
        self.addCleanup(caller.close)
        self.assertRaises(DeadlineMissed, caller.call, "report_batch", {}, [], deadline_s=0.05)
        made[0].hang = 0
        second_hangs = HangingController(1, release, [])
        caller.client = second_hangs  # as if renewed already; it hangs too
        caller._renew = lambda client: made[-1] if client is not second_hangs else HangingController(
            0, release, made)
        caller._executor = caller._new_executor()
        caller._owned = True
        self.assertRaises(DeadlineMissed, caller.call, "report_batch", {}, [], deadline_s=0.05)
        self.assertEqual(2, caller.stuck)
        self.assertFalse(second_hangs.closed)
        release.set()
        for _ in range(200):
            if caller.stuck == 0:
                break
            time.sleep(0.01)
        self.assertTrue(second_hangs.closed)
        self.assertFalse(first.closed)

    def test_stuck_calls_are_bounded(self) -> None:
        release = threading.Event()
        self.addCleanup(release.set)
        made: List[HangingController] = []

        def renew(client: Any) -> HangingController:
            return HangingController(1, release, made)  # every new client hangs too (a hung broker)

        caller = DeadlineCaller(HangingController(1, release, made), renew, max_stuck=2)
        self.addCleanup(caller.close)
        for _ in range(2):
            self.assertRaises(DeadlineMissed, caller.call, "report_batch", {}, [], deadline_s=0.02)
        self.assertRaises(CallsStuck, caller.call, "report_batch", {}, [], deadline_s=0.02)
        self.assertEqual(2, len(made))  # no client opened while two calls are stuck
        self.assertEqual(2, caller.stuck)
        release.set()
        for _ in range(200):
            if caller.stuck == 0:
                break
            time.sleep(0.01)
        self.assertEqual({"results": []}, caller.call("report_batch", {}, [], deadline_s=1.0))

    def test_without_renew_the_next_call_waits_for_the_stuck_one(self) -> None:
        release = threading.Event()
        self.addCleanup(release.set)
        api = BatchController()
        api.gate = release
        caller = DeadlineCaller(api)
        self.addCleanup(caller.close)
        self.assertRaises(DeadlineMissed, caller.call, "report_batch", {}, [], deadline_s=0.02)
        self.assertRaises(CallsStuck, caller.call, "report_batch", {}, [], deadline_s=0.02)
        release.set()
        for _ in range(200):
            if caller.stuck == 0:
                break
            time.sleep(0.01)
        self.assertEqual({"results": []}, caller.call("report_batch", {}, [], deadline_s=1.0))
