"""The ComputeManager in process: discovery events, reports, state file and restart."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
import time
from typing import Any, List, Optional, Tuple

import testtools
from oslo_config import cfg

from ha_guest.compute.discovery.base import DiscoveryDriver
from ha_guest.compute.heartbeat_monitor import GuestState
from ha_guest.compute.manager import ComputeEndpoint, ComputeManager, InstanceStats
from ha_guest.conf import compute as compute_conf
from ha_guest.conf import default as default_conf
from ha_guest.testing import wait_for
from tests.unit.compute.base import FakeController, FakeGuest, make_tempdir

A = "11111111-1111-4111-8111-111111111111"
TIMEOUT = 10.0


class GuestLoop:
    """FakeGuests served from a loop in a thread of their own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    def guest(self, path: str, **kwargs: Any) -> FakeGuest:
        async def make() -> FakeGuest:
            return await FakeGuest(path, **kwargs).start()
        return self.call(make())

    def set(self, guest: FakeGuest, **attrs: Any) -> None:
        def apply() -> None:
            for name, value in attrs.items():
                setattr(guest, name, value)
        self.loop.call_soon_threadsafe(apply)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)


class ManualDiscovery(DiscoveryDriver):
    """A driver the test drives by hand."""

    instances: List["ManualDiscovery"] = []

    def __init__(self, conf: cfg.ConfigOpts, listener: Any) -> None:
        super().__init__(conf, listener)
        self.started = self.stopped = False
        ManualDiscovery.instances.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


class ManagerTestCase(testtools.TestCase):
    """A ComputeManager on manual discovery with guests on a loop of their own and a fake controller."""

    #: [compute] options of the test besides the state file.
    OVERRIDES: Tuple[Tuple[str, Any], ...] = (("reconnect_min_s", 0.02), ("state_report_interval_s", 1))

    def setUp(self) -> None:
        super().setUp()
        self.tmp = make_tempdir(self)
        self.conf = cfg.ConfigOpts()
        compute_conf.register_opts(self.conf)
        default_conf.register_opts(self.conf)
        self.conf([])
        for name, value in (("state_file", os.path.join(self.tmp, "state.json")),) + self.OVERRIDES:
            self.conf.set_override(name, value, "compute")
        self.guests = GuestLoop()
        self.addCleanup(self.guests.stop)
        self.api = FakeController()

    def start_manager(self) -> tuple[ComputeManager, ManualDiscovery]:
        manager = ComputeManager(self.conf, self.api, host="node-1", discovery=ManualDiscovery)
        manager.start()
        self.addCleanup(manager.stop, 0.5)
        return manager, ManualDiscovery.instances[-1]

    def reports(self, name: str) -> List[dict]:
        return [payload for call, payload in list(self.api.calls) if call == name]


class TestComputeManager(ManagerTestCase):

    def test_discovered_guest_is_watched_and_fault_reported(self) -> None:
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"))
        manager, discovery = self.start_manager()
        self.assertTrue(discovery.started)
        manager.channel_added(A, guest.path)
        wait_for(lambda: manager.instance_stats(A).responses >= 2, TIMEOUT, message="answers")
        self.guests.set(guest, answer=False)
        fault = wait_for(lambda: self.reports("report_fault"), TIMEOUT, message="a fault")[0]
        self.assertEqual((A, "node-1", "missed", 100), (fault["instance_uuid"], fault["host"], fault["kind"],
                                                         fault["interval_ms"]))
        self.assertLess(abs(fault["detected_at"] - time.time()), 5)
        self.guests.set(guest, answer=True)
        recovery = wait_for(lambda: self.reports("report_recovery"), TIMEOUT, message="a recovery")[0]
        self.assertEqual(fault["incident_id"], recovery["incident_id"])

    def test_instance_stats_is_a_snapshot_of_a_watched_instance(self) -> None:
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"))
        manager, _ = self.start_manager()
        self.assertIsNone(manager.instance_stats(A))
        manager.channel_added(A, guest.path)
        wait_for(lambda: manager.instance_stats(A).responses >= 2, TIMEOUT, message="answers")
        stats = manager.instance_stats(A)
        self.assertIsInstance(stats, InstanceStats)
        self.assertEqual((GuestState.HEALTHY, 100, True), (stats.state, stats.interval_ms, stats.connected))
        self.assertGreaterEqual(stats.challenges, stats.responses)
        self.assertTrue(0 < stats.max_rtt_ms < TIMEOUT * 1000, stats)
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, stats, "responses", 0)
        self.assertEqual([A], list(manager.all_instance_stats()))
        manager.channel_removed(A)
        wait_for(lambda: manager.instance_stats(A) is None, TIMEOUT, message="the instance to be forgotten")
        self.assertEqual({}, manager.all_instance_stats())

    def test_suspended_guest_is_not_a_fault(self) -> None:
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"))
        manager, _ = self.start_manager()
        manager.channel_added(A, guest.path)
        wait_for(lambda: manager.instance_stats(A).responses >= 1, TIMEOUT, message="answers")
        manager.instance_suspended(A, "paused")
        manager.call(lambda: None)
        self.guests.set(guest, answer=False)
        time.sleep(0.5)
        self.assertEqual([], self.reports("report_fault"))
        self.guests.set(guest, answer=True)
        time.sleep(0.05)
        manager.instance_resumed(A)
        time.sleep(0.5)
        self.assertEqual([], self.reports("report_fault"))

    def test_removed_channel_ends_monitoring(self) -> None:
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"))
        manager, _ = self.start_manager()
        manager.channel_added(A, guest.path)
        wait_for(lambda: manager.instance_stats(A).responses >= 1, TIMEOUT, message="answers")
        manager.channel_removed(A)
        manager.call(lambda: None)
        self.assertEqual({}, manager.instances)
        self.guests.call(guest.stop())
        time.sleep(0.4)
        self.assertEqual([], self.reports("report_fault"))

    def test_state_reports_periodic_and_on_request(self) -> None:
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"))
        manager, _ = self.start_manager()
        manager.channel_added(A, guest.path)
        report = wait_for(lambda: [r for r in self.reports("report_state") if r["instances"]], TIMEOUT,
                          message="a state report")[0]
        self.assertEqual("node-1", report["host"])
        self.assertEqual(A, report["instances"][0]["instance_uuid"])
        count = len(self.reports("report_state"))
        ComputeEndpoint(manager).request_state_report({})
        wait_for(lambda: len(self.reports("report_state")) > count, TIMEOUT, message="a requested report")

    def test_state_file_follows_registration(self) -> None:
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"))
        manager, _ = self.start_manager()
        manager.channel_added(A, guest.path)

        def saved() -> Optional[dict]:
            try:
                with open(self.conf.compute.state_file, encoding="utf-8") as handle:
                    records = json.load(handle)["instances"]
            except (OSError, ValueError):
                return None
            return records[0] if records else None

        record = wait_for(saved, TIMEOUT, message="the state file")
        self.assertEqual((A, "healthy", 100, None), (record["instance_uuid"], record["state"],
                                                     record["interval_ms"], record["incident_id"]))

    def test_restart_with_open_fault_keeps_the_announced_incident(self) -> None:
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"), answer=False)
        manager, _ = self.start_manager()
        manager.channel_added(A, guest.path)
        fault = wait_for(lambda: self.reports("report_fault"), TIMEOUT, message="a fault")[0]
        manager.stop(0.5)
        self.api.calls.clear()
        restarted, _ = self.start_manager()
        restarted.channel_added(A, guest.path)
        # Acknowledged before the restart: not reported again, but still open, with its first detection time.
        item = wait_for(lambda: [i for r in self.reports("report_state") for i in r["instances"]], TIMEOUT,
                        message="a state report")[0]
        self.assertEqual((fault["incident_id"], fault["detected_at"], True),
                         (item["incident_id"], item["detected_at"], item["announced"]))
        self.assertEqual([], self.reports("report_fault"))
        self.guests.set(guest, answer=True)
        recovery = wait_for(lambda: self.reports("report_recovery"), TIMEOUT, message="a recovery")[0]
        self.assertEqual(fault["incident_id"], recovery["incident_id"])

    def test_restart_with_healthy_guest_no_fault(self) -> None:
        guest = self.guests.guest(os.path.join(self.tmp, "a.sock"))
        manager, _ = self.start_manager()
        manager.channel_added(A, guest.path)
        wait_for(lambda: manager.instance_stats(A).responses >= 2, TIMEOUT, message="answers")
        manager.stop(0.5)
        restarted, _ = self.start_manager()
        restarted.channel_added(A, guest.path)
        wait_for(lambda: restarted.instance_stats(A).responses >= 5, TIMEOUT, message="answers")
        self.assertEqual([], self.reports("report_fault"))

    def test_saved_instances_listed_until_discovered(self) -> None:
        with open(self.conf.compute.state_file, "w", encoding="utf-8") as handle:
            json.dump({"version": 1, "instances": [
                {"instance_uuid": A, "state": "failed", "interval_ms": 100, "incident_id": "inc-9",
                 "fault_kind": "missed", "reason": "no answer"}]}, handle)
        manager, _ = self.start_manager()
        report = manager.call(manager.state_report)
        self.assertEqual([(A, "failed", "inc-9")],
                         [(i["instance_uuid"], i["state"], i["incident_id"]) for i in report["instances"]])

    def test_stop_stops_discovery_and_is_idempotent(self) -> None:
        manager, discovery = self.start_manager()
        manager.stop(0.1)
        manager.stop(0.1)
        self.assertTrue(discovery.stopped)
        self.assertFalse(manager._thread.is_alive())
