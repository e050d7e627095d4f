"""The compute agent's incidents survive restarts, lost state files and removed channels (in process)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, Dict, List, Optional

import testtools

from ha_guest.compute.outbox import Outbox
from ha_guest.compute.state_store import StateStore
from ha_guest.rpc.compute_api import COMPUTE_API_VERSION
from ha_guest.testing import wait_for
from tests.unit.compute.base import FakeController
from tests.unit.compute.test_manager import TIMEOUT, A, ManagerTestCase

B = "22222222-2222-4222-8222-222222222222"
HOST = "node-1"


class FileCheckingController(FakeController):
    """Records, with each fault, what the state file said about it at that moment; lists faults by host."""

    def __init__(self, state_file: str) -> None:
        super().__init__()
        self.state_file = state_file
        self.on_file: List[Optional[Dict[str, Any]]] = []
        self.listed: List[Dict[str, Any]] = []
        self.list_calls: List[Dict[str, Any]] = []

    def report_fault(self, ctxt: Any, fault: Dict[str, Any]) -> Any:
        with open(self.state_file, encoding="utf-8") as handle:
            records = {r["instance_uuid"]: r for r in json.load(handle)["instances"]}
        self.on_file.append(records.get(fault["instance_uuid"]))
        return super().report_fault(ctxt, fault)

    def list_faults(self, ctxt: Any, instance_uuid: Any = None, host: Any = None) -> List[Dict[str, Any]]:
        self.list_calls.append({"host": host})
        return list(self.listed)


def saved_file(path: str, *records: Dict[str, Any], version: int = 2) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"version": version, "instances": list(records)}, handle)


def failed_record(uuid: str, incident_id: str, **extra: Any) -> Dict[str, Any]:
    return dict({"instance_uuid": uuid, "state": "failed", "interval_ms": 100, "incident_id": incident_id,
                 "fault_kind": "missed", "reason": "no answer"}, **extra)


class TestDurability(ManagerTestCase):

    OVERRIDES = (("reconnect_min_s", 0.02), ("state_report_interval_s", 1), ("restart_grace_s", 0.3),
                 ("flap_hold_down_s", 0.0))

    def setUp(self) -> None:
        super().setUp()
        self.api = FileCheckingController(self.conf.compute.state_file)

    def items(self) -> List[Dict[str, Any]]:
        return [item for report in self.reports("report_state") for item in report["instances"]]

    def test_a_fault_is_on_disk_before_the_controller_hears_of_it(self) -> None:
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"))
        manager, _ = self.start_manager()
        manager.channel_added(A, guest.path)
        wait_for(lambda: manager.instance_stats(A).responses >= 2, TIMEOUT, message="answers")
        self.guests.set(guest, answer=False)
        fault = wait_for(lambda: self.reports("report_fault"), TIMEOUT, message="a fault")[0]
        on_file = self.api.on_file[0]
        assert on_file is not None
        self.assertEqual((fault["incident_id"], fault["detected_at"], False),
                         (on_file["incident_id"], on_file["detected_at"], on_file["announced"]))
        # Once acknowledged, the incident is marked announced (lazily).
        wait_for(lambda: manager.store.load().records[A]["announced"], TIMEOUT, message="announced on file")

    def test_unacknowledged_incident_is_reported_again_at_once_with_its_detection_time(self) -> None:
        saved_file(self.conf.compute.state_file,
                   failed_record(A, "inc-7", detected_at=1234.5, announced=False))
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"), answer=False)
        manager, _ = self.start_manager()
        manager.channel_added(A, guest.path)
        fault = wait_for(lambda: self.reports("report_fault"), TIMEOUT, message="the fault again")[0]
        self.assertEqual(("inc-7", 1234.5), (fault["incident_id"], fault["detected_at"]))
        time.sleep(0.8)  # past restart_grace_s: the hung guest's misses confirm the incident; no second report
        self.assertEqual(1, len(self.reports("report_fault")))
        self.guests.set(guest, answer=True)
        recovery = wait_for(lambda: self.reports("report_recovery"), TIMEOUT, message="a recovery")
        self.assertEqual(["inc-7"], [r["incident_id"] for r in recovery])

    def test_version_1_file_incident_is_reported_again(self) -> None:
        saved_file(self.conf.compute.state_file, failed_record(A, "inc-1"), version=1)
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"), answer=False)
        manager, _ = self.start_manager()
        manager.channel_added(A, guest.path)
        fault = wait_for(lambda: self.reports("report_fault"), TIMEOUT, message="the fault again")[0]
        self.assertEqual("inc-1", fault["incident_id"])
        # From now on its detection time stays put, in the file too.
        wait_for(lambda: manager.store.load().records[A]["detected_at"] == fault["detected_at"], TIMEOUT,
                 message="detected_at kept")

    def test_corrupt_file_falls_back_to_the_previous_generation(self) -> None:
        saved_file(self.conf.compute.state_file + ".prev",
                   failed_record(A, "inc-3", detected_at=99.0, announced=True))
        with open(self.conf.compute.state_file, "w", encoding="utf-8") as handle:
            handle.write('{"version": 2, "instances": [{"instance_')  # torn
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"), answer=False)
        manager, _ = self.start_manager()
        manager.channel_added(A, guest.path)
        item = wait_for(lambda: [i for i in self.items() if i["instance_uuid"] == A], TIMEOUT, message="a report")[0]
        self.assertEqual(("inc-3", 99.0, True), (item["incident_id"], item["detected_at"], item["announced"]))
        self.assertEqual([], self.api.list_calls)
        self.guests.set(guest, answer=True)
        recovery = wait_for(lambda: self.reports("report_recovery"), TIMEOUT, message="a recovery")
        self.assertEqual(["inc-3"], [r["incident_id"] for r in recovery])
        self.assertEqual([], self.reports("report_fault"))

    def test_lost_file_relearns_this_hosts_incidents_from_the_controller(self) -> None:
        for path in (self.conf.compute.state_file, self.conf.compute.state_file + ".prev"):
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("\x00garbage")
        self.api.listed = [
            {"instance_uuid": A, "host": HOST, "incident_id": "inc-a", "kind": "missed", "reason": "r",
             "detected_at": 50.0, "interval_ms": 100, "misses": 1, "state": "active"},
            {"instance_uuid": B, "host": HOST, "incident_id": "inc-b", "kind": "missed", "reason": "r",
             "detected_at": 60.0, "interval_ms": 100, "misses": 1, "state": "active"},
            {"instance_uuid": "elsewhere", "host": "node-2", "incident_id": "inc-x", "kind": "missed",
             "reason": "r", "detected_at": 70.0, "interval_ms": 100, "misses": 1, "state": "active"}]
        hung = self.guests.guest(os.path.join(self.tmp, "a.sock"), answer=False, auto_hello=False)
        gone = self.guests.guest(os.path.join(self.tmp, "b.sock"))
        manager, _ = self.start_manager()
        self.assertEqual([{"host": HOST}], self.api.list_calls)
        manager.channel_added(A, hung.path)
        manager.channel_added(B, gone.path)
        # The hung guest keeps its incident: no second fault; the one that answers gets its recovery.
        recovery = wait_for(lambda: self.reports("report_recovery"), TIMEOUT, message="b's recovery")
        self.assertEqual(["inc-b"], [r["incident_id"] for r in recovery])
        item = wait_for(lambda: [i for i in self.items() if i["instance_uuid"] == A], TIMEOUT, message="a report")[0]
        self.assertEqual(("inc-a", 50.0, True), (item["incident_id"], item["detected_at"], item["announced"]))
        time.sleep(0.8)
        self.assertEqual([], self.reports("report_fault"))
        self.guests.set(hung, answer=True, auto_hello=True)
        self.guests.loop.call_soon_threadsafe(hung.drop)  # a new connection: hello, init, answers
        wait_for(lambda: len(self.reports("report_recovery")) == 2, TIMEOUT, message="a's recovery")
        self.assertEqual(["inc-b", "inc-a"], [r["incident_id"] for r in self.reports("report_recovery")])

    def test_removed_channel_with_an_open_incident_is_an_exit_at_once(self) -> None:
        hung = self.guests.guest(os.path.join(self.tmp, "a.sock"), answer=False)
        healthy = self.guests.guest(os.path.join(self.tmp, "b.sock"))
        manager, _ = self.start_manager()
        manager.channel_added(A, hung.path)
        manager.channel_added(B, healthy.path)
        wait_for(lambda: self.reports("report_fault"), TIMEOUT, message="a fault")
        wait_for(lambda: manager.instance_stats(B).responses >= 2, TIMEOUT, message="answers")
        started = time.monotonic()
        manager.channel_removed(A)
        manager.channel_removed(B)
        exits = wait_for(lambda: self.reports("report_exit"), TIMEOUT, message="an exit")
        self.assertLess(time.monotonic() - started, 1.0)
        time.sleep(0.2)
        self.assertEqual([A], [e["instance_uuid"] for e in self.reports("report_exit")])  # none for B
        self.assertIn("channel removed", exits[0]["reason"])
        self.assertEqual([], self.reports("report_recovery"))
        self.assertNotIn(A, manager.store.load().records)

    def test_state_report_says_who_registered_since_when_and_the_agent(self) -> None:
        silent = self.guests.guest(os.path.join(self.tmp, "a.sock"), auto_hello=False)
        answering = self.guests.guest(os.path.join(self.tmp, "b.sock"))
        before = time.time()
        manager, _ = self.start_manager()
        manager.channel_added(A, silent.path)
        manager.channel_added(B, answering.path)
        wait_for(lambda: manager.instance_stats(B).responses >= 1, TIMEOUT, message="answers")
        report = manager.call(manager.state_report)
        items = {i["instance_uuid"]: i for i in report["instances"]}
        self.assertEqual((False, True), (items[A]["registered"], items[B]["registered"]))
        self.assertTrue(before <= items[A]["since"] <= time.time())
        self.assertEqual({"version", "started_at", "report_interval_s", "rpc_api"}, set(report["agent"]))
        self.assertEqual(COMPUTE_API_VERSION, report["agent"]["rpc_api"])
        self.assertEqual(1.0, report["agent"]["report_interval_s"])
        # Its wait for registration survives a restart of the agent.
        manager.stop(0.5)
        restarted, _ = self.start_manager()
        restarted.channel_added(A, silent.path)
        again = restarted.call(restarted.state_report)
        self.assertEqual(items[A]["since"], [i for i in again["instances"] if i["instance_uuid"] == A][0]["since"])
        # Paused: no registration expected; resumed: the wait starts afresh.
        restarted.instance_suspended(A, "paused")
        paused = restarted.call(restarted.state_report)["instances"][0]
        self.assertNotIn("registered", paused)
        restarted.instance_resumed(A)
        resumed = restarted.call(restarted.state_report)["instances"][0]
        self.assertGreater(resumed["since"], items[A]["since"])


class FakeStore:
    """Records the saves the outbox makes."""

    def __init__(self) -> None:
        self.saves: List[Any] = []

    def save(self, records: Any, release: Any = None) -> None:
        self.saves.append((records, release))


class FakeReporter:

    def __init__(self) -> None:
        self.got: List[Any] = []

    def report_fault(self, payload: Dict[str, Any]) -> None:
        self.got.append(("fault", payload["n"]))

    def report_recovery(self, payload: Dict[str, Any]) -> None:
        self.got.append(("recovery", payload["n"]))


class TestOutbox(testtools.TestCase):

    def test_a_storm_in_one_iteration_is_one_write_then_every_report_in_order(self) -> None:
        loop = asyncio.new_event_loop()
        self.addCleanup(loop.close)
        store, reporter = FakeStore(), FakeReporter()
        snapshots: List[int] = []
        outbox = Outbox(loop, store, reporter, lambda: snapshots.append(1) or [{"n": len(snapshots)}])  # type: ignore

        async def storm() -> None:
            for n in range(1000):
                outbox.put("report_fault", {"n": n})
            outbox.put("report_recovery", {"n": 0})
            self.assertEqual([], store.saves)  # nothing handed over before the iteration ends
            await asyncio.sleep(0)
            await asyncio.sleep(0)

        loop.run_until_complete(storm())
        self.assertEqual(1, len(store.saves))
        self.assertEqual([], reporter.got)  # held until the write is done
        store.saves[0][1]()  # the writer thread, after the write
        self.assertEqual([("fault", n) for n in range(1000)] + [("recovery", 0)], reporter.got)
        self.assertEqual(1001, outbox.counters["released"])

    def test_lazy_changes_write_only_what_changed(self) -> None:
        loop = asyncio.new_event_loop()
        self.addCleanup(loop.close)
        store = FakeStore()
        records = [{"n": 1}]
        outbox = Outbox(loop, store, FakeReporter(), lambda: list(records))  # type: ignore[arg-type]

        async def run() -> None:
            outbox.changed()
            outbox.changed()
            await asyncio.sleep(0.15)
            outbox.changed()  # nothing changed since
            await asyncio.sleep(0.15)

        loop.run_until_complete(run())
        self.assertEqual([([{"n": 1}], None)], store.saves)


class TestStoreRelease(testtools.TestCase):

    def test_real_store_releases_after_the_file_holds_the_records(self) -> None:
        from tests.unit.compute.base import make_tempdir
        path = os.path.join(make_tempdir(self), "state.json")
        store = StateStore(path)
        store.start()
        self.addCleanup(store.stop)
        seen: List[Any] = []
        store.save([failed_record(A, "inc-1")], release=lambda: seen.append(StateStore(path).load().records))
        wait_for(lambda: seen, TIMEOUT, message="the release")
        self.assertEqual(["inc-1"], [r["incident_id"] for r in seen[0].values()])
