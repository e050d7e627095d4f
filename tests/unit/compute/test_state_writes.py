"""The compute agent's state file writes stay bounded whatever a guest does; a flapping guest is one incident."""

from __future__ import annotations

import os
import time
from typing import Any, List

from ha_guest.compute.manager import ComputeManager
from ha_guest.protocol import heartbeat
from ha_guest.protocol.envelope import Envelope
from ha_guest.testing import wait_for
from tests.unit.compute.base import FakeGuest
from tests.unit.compute.test_manager import TIMEOUT, A, ManagerTestCase

FLOOD_S = 2.0


class FloodingGuest(FakeGuest):
    """Answers every challenge with the opposite health and sends init again with each answer."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.flood = False
        self.flips = 0

    def _received(self, conn: Any, data: bytes) -> None:
        before = len(self.frames)
        super()._received(conn, data)
        if not self.flood:
            return
        frames: List[Envelope] = self.frames[before:]
        for item in frames:
            if isinstance(item.message, heartbeat.Challenge):
                self.flips += 1
                self.health = heartbeat.UNHEALTHY if self.flips % 2 else heartbeat.HEALTHY
                self.send(heartbeat.Init(self.interval_ms))


class TestStateWrites(ManagerTestCase):
    """ComputeManager with a guest that floods init and flaps its health every answer."""

    OVERRIDES = (("reconnect_min_s", 0.02), ("flap_max_hold_down_s", 2.0))

    def flooding_guest(self) -> FloodingGuest:
        async def make() -> FloodingGuest:
            return await FloodingGuest(os.path.join(self.tmp, "a.sock")).start()  # type: ignore[return-value]
        return self.guests.call(make())  # type: ignore[no-any-return]

    def run_flood(self, manager: ComputeManager, guest: FloodingGuest) -> int:
        """Flood for FLOOD_S once the guest is registered and saved; return the state file writes meanwhile."""
        manager.channel_added(A, guest.path)
        wait_for(lambda: manager.instance_stats(A).responses >= 3, TIMEOUT, message="answers")
        wait_for(lambda: manager.store.saves >= 1, TIMEOUT, message="the first write")
        time.sleep(0.5)
        before = manager.store.saves
        self.guests.set(guest, flood=True)
        time.sleep(FLOOD_S)
        self.guests.set(guest, flood=False, health=heartbeat.HEALTHY)
        return manager.store.saves - before

    def test_flood_with_damping_writes_once_and_reports_one_incident(self) -> None:
        manager, _ = self.start_manager()
        guest = self.flooding_guest()
        writes = self.run_flood(manager, guest)
        self.assertGreater(guest.flips, 5)
        # The incident opening (written before it is reported) and its acknowledgement are the only persistent
        # changes: while it flaps, the file keeps the open incident.
        self.assertLessEqual(writes, 2)
        self.assertEqual(1, len(self.reports("report_fault")))
        # Steady health closes it after the hold-down (here at most 2 s), under the same incident id.
        recovery = wait_for(lambda: self.reports("report_recovery"), TIMEOUT, message="a recovery")
        self.assertEqual([self.reports("report_fault")[0]["incident_id"]], [r["incident_id"] for r in recovery])

    def test_flood_without_damping_writes_at_most_once_per_report(self) -> None:
        self.conf.set_override("flap_hold_down_s", 0.0, "compute")
        self.conf.set_override("state_file_min_interval_s", 0.5, "compute")
        manager, _ = self.start_manager()
        guest = self.flooding_guest()
        before = len(self.api.calls)
        writes = self.run_flood(manager, guest)
        self.assertGreater(len(self.reports("report_fault")), 3)  # every flap is an incident
        # Each fault and recovery is written before it is reported; the acknowledgements and the rest
        # are bounded by the write interval.
        reports = len([name for name, _ in self.api.calls[before:] if name != "report_state"])
        self.assertLessEqual(writes, reports + FLOOD_S / 0.5 + 1)

    def test_init_flood_of_a_healthy_guest_writes_nothing(self) -> None:
        manager, _ = self.start_manager()
        guest = self.flooding_guest()
        manager.channel_added(A, guest.path)
        wait_for(lambda: manager.instance_stats(A).responses >= 3, TIMEOUT, message="answers")
        wait_for(lambda: manager.store.saves >= 1, TIMEOUT, message="the first write")
        time.sleep(0.5)
        before = manager.store.saves
        for _ in range(int(FLOOD_S / 0.02)):
            self.guests.loop.call_soon_threadsafe(guest.send, heartbeat.Init(guest.interval_ms))
            time.sleep(0.02)
        self.assertEqual(before, manager.store.saves)
        self.assertEqual([], self.reports("report_fault"))
