"""ha_guest's vitrage sink -> oslo.messaging -> vitrage-graph's own notification listener -> the entity graph."""

from __future__ import annotations

import queue
import time
import uuid
from typing import Any

from oslo_config import cfg
from vitrage import messaging as vitrage_messaging
from vitrage.common.constants import VertexProperties as VProps
from vitrage.entity_graph.driver_exec import DriversNotificationEndpoint

from ha_guest.sinks.vitrage import VitrageSink
from ha_guest.vitrage.datasources.ha_guest import HA_GUEST_DATASOURCE
from tests.vitrage import base


class TestSinkToVitrage(base.VitrageTestCase):
    """The sink's notifications, as they are, go through the listener vitrage-graph starts."""

    def setUp(self) -> None:
        super().setUp()
        # One in-process broker (oslo.messaging's fake driver) for both sides.
        self.parse_config(DEFAULT={"transport_url": "fake:/"})
        self.processor = self.create_processor()
        self.events: queue.Queue[list[dict[str, Any]]] = queue.Queue()
        listener = DriversNotificationEndpoint(self.events.put).init().get_listener()
        listener.start()
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        # The controller's own configuration; the sink's topic defaults to Vitrage's.
        controller_conf = cfg.ConfigOpts()
        controller_conf([], project="ha_guest")
        self.sink = VitrageSink(controller_conf, vitrage_messaging.get_transport())
        self.addCleanup(self.sink.close)

    def receive(self) -> None:
        """Process the next batch the listener hands to vitrage-graph."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                events = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if events:  # the listener also hands on empty batches (nothing ours in a notification)
                for event in events:
                    self.processor.process_event(event)
                return
        self.fail("no ha_guest event reached vitrage-graph's listener within 10 s")

    def test_raised_then_cleared(self) -> None:
        fault = {k: v for k, v in base.fault(self.instance_uuid).items() if k != "state"}
        self.sink.fault_raised(fault)
        self.receive()
        (alarm,) = self.alarms_on(self.processor, self.instance_vertex(self.processor, self.instance_uuid))
        self.assertEqual("Guest heartbeat missed", alarm[VProps.NAME])
        self.assertEqual("CRITICAL", alarm[VProps.VITRAGE_OPERATIONAL_SEVERITY])

        self.sink.fault_cleared(fault, {"cleared_at": fault["detected_at"] + 1, "cleared_by": "recovered"})
        self.receive()
        self.assertEqual([], self.live_vertices(self.processor, HA_GUEST_DATASOURCE))

    def test_fault_without_incident_id(self) -> None:
        fault = dict(base.fault(str(uuid.uuid4())), incident_id=None)
        del fault["state"]
        self.sink.fault_raised(fault)
        self.receive()
        self.assertEqual(1, len(self.live_vertices(self.processor, HA_GUEST_DATASOURCE)))
