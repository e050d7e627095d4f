"""get_all: the driver asks ha_guest's controller endpoint for its faults over oslo.messaging (fake driver)."""

from __future__ import annotations

import time
import uuid
from typing import Any, Optional

import oslo_messaging
from vitrage import messaging as vitrage_messaging
from vitrage.common.constants import DatasourceAction
from vitrage.common.constants import VertexProperties as VProps
from vitrage.entity_graph.driver_exec import DriverExec

from ha_guest.controller.endpoint import ControllerEndpoint
from ha_guest.rpc import transport as rpc_transport
from ha_guest.vitrage.datasources.ha_guest import HA_GUEST_DATASOURCE
from ha_guest.vitrage.datasources.ha_guest.properties import EventType, FaultKind
from tests.vitrage import base

# In-process broker: oslo.messaging's fake driver, shared through Vitrage's transport cache.
FAKE_URL = "fake:/"


class FakeHandler:
    """The part of the controller's FaultHandler that list_faults uses."""

    def __init__(self) -> None:
        self.faults: list[dict[str, Any]] = []
        self.asked: list[Optional[str]] = []

    def list_faults(self, instance_uuid: Optional[str]) -> list[dict[str, Any]]:
        self.asked.append(instance_uuid)
        return [dict(f, state="active") for f in self.faults]


class TestResync(base.VitrageTestCase):
    """Snapshots (init and periodic) from a controller served by ha_guest's real ControllerEndpoint."""

    def setUp(self) -> None:
        super().setUp()
        self.topic = "ha_guest_controller_%s" % uuid.uuid4().hex
        self.parse_config(
            ha_guest={
                "controller_topic": self.topic,
                "controller_transport_url": FAKE_URL,
                "controller_call_timeout": "5",
            }
        )
        self.handler = FakeHandler()
        self.processor = self.create_processor()

    def start_controller(self, exchange: str = "ha_guest") -> None:
        """Serve ControllerEndpoint as ha-guest-controller does, on ``exchange`` (its control_exchange)."""
        transport = vitrage_messaging.get_rpc_transport(FAKE_URL)
        target = oslo_messaging.Target(topic=self.topic, server="controller-1", exchange=exchange)
        server = rpc_transport.get_rpc_server(transport, target, [ControllerEndpoint(self.handler)])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)

    def snapshot(self, action: str = DatasourceAction.SNAPSHOT) -> list[dict[str, Any]]:
        """Run a snapshot of our datasource through vitrage-graph's DriverExec; return the events it processed."""
        events: list[dict[str, Any]] = []

        def process(batch: list[dict[str, Any]]) -> int:
            for event in batch:
                events.append(event)
                self.processor.process_event(event)
            return len(batch)

        DriverExec(process, None, self.processor.entity_graph).get_all(HA_GUEST_DATASOURCE, action)
        return events

    def live_alarms(self) -> list[Any]:
        return self.live_vertices(self.processor, HA_GUEST_DATASOURCE)

    def test_init_snapshot_brings_the_active_faults(self) -> None:
        self.start_controller()
        self.handler.faults = [base.fault(self.instance_uuid), base.fault(str(uuid.uuid4()), FaultKind.UNHEALTHY)]
        events = self.snapshot(DatasourceAction.INIT_SNAPSHOT)

        self.assertEqual([None], self.handler.asked)
        self.assertEqual(2, len(events))
        for event in events:
            self.assertEqual(HA_GUEST_DATASOURCE, event["vitrage_entity_type"])
            self.assertEqual(DatasourceAction.INIT_SNAPSHOT, event["vitrage_datasource_action"])
        self.assertEqual(2, len(self.live_alarms()))
        (alarm,) = self.alarms_on(self.processor, self.instance_vertex(self.processor, self.instance_uuid))
        self.assertEqual("CRITICAL", alarm[VProps.VITRAGE_OPERATIONAL_SEVERITY])

    def test_periodic_snapshot_keeps_pushed_alarm(self) -> None:
        self.start_controller()
        payload = base.fault(self.instance_uuid)
        self.push(self.processor, EventType.RAISED, payload)
        alarm_id = self.live_alarms()[0].vertex_id
        self.handler.faults = [payload]
        self.snapshot()
        self.assertEqual([alarm_id], [v.vertex_id for v in self.live_alarms()])

    def test_snapshot_clears_what_the_controller_no_longer_lists(self) -> None:
        # A cleared notification Vitrage never got (it was down, the broker lost it).
        self.start_controller()
        stale = base.fault(self.instance_uuid)
        self.push(self.processor, EventType.RAISED, stale)
        fresh = base.fault(str(uuid.uuid4()))
        self.handler.faults = [fresh]
        events = self.snapshot()

        self.assertEqual(["active", "cleared"], [e["state"] for e in events])
        self.assertEqual("resync", events[1]["cleared_by"])
        self.assertEqual([fresh["incident_id"]], [v[VProps.ID] for v in self.live_alarms()])
        self.assertEqual([], self.alarms_on(self.processor, self.instance_vertex(self.processor, self.instance_uuid)))

    def test_fault_pushed_during_the_call_is_not_cleared(self) -> None:
        self.start_controller()
        payload = base.fault(self.instance_uuid)
        driver = self.ha_guest_driver()
        list_faults = self.handler.list_faults

        def answer_then_push(instance_uuid: Optional[str]) -> list[dict[str, Any]]:
            answer = list_faults(instance_uuid)  # the answer is made before the push arrives
            self.processor.process_event(driver.enrich_event(payload, EventType.RAISED))
            return answer

        self.handler.list_faults = answer_then_push  # type: ignore[method-assign]
        self.assertEqual([], self.snapshot())
        self.assertEqual(1, len(self.live_alarms()))

    def test_unreachable_controller_changes_nothing(self) -> None:
        # A controller on another exchange than [ha_guest] controller_exchange never gets the call.
        self.parse_config(
            ha_guest={"controller_topic": self.topic, "controller_transport_url": FAKE_URL,
                      "controller_call_timeout": "0.3"}
        )
        self.start_controller(exchange="openstack")
        self.handler.faults = [base.fault(str(uuid.uuid4()))]
        self.push(self.processor, EventType.RAISED, base.fault(self.instance_uuid))
        started = time.monotonic()
        self.assertEqual([], self.snapshot())
        self.assertLess(time.monotonic() - started, 3)
        self.assertEqual([], self.handler.asked)
        self.assertEqual(1, len(self.live_alarms()))

    def test_controller_exchange_option(self) -> None:
        self.parse_config(
            ha_guest={"controller_topic": self.topic, "controller_transport_url": FAKE_URL,
                      "controller_exchange": "ha_guest_other"}
        )
        self.start_controller(exchange="ha_guest_other")
        self.handler.faults = [base.fault(self.instance_uuid)]
        self.assertEqual(1, len(self.snapshot()))

    def test_bad_answer_changes_nothing(self) -> None:
        self.start_controller()
        self.push(self.processor, EventType.RAISED, base.fault(self.instance_uuid))
        self.handler.list_faults = lambda instance_uuid: {"not": "a list"}  # type: ignore[method-assign]
        self.assertEqual([], self.snapshot())
        self.assertEqual(1, len(self.live_alarms()))

    def test_garbage_entries_skipped(self) -> None:
        self.start_controller()
        good = base.fault(self.instance_uuid)
        garbage = [None, "x", {"kind": "missed"}, dict(base.fault(str(uuid.uuid4())), state="bogus")]
        self.handler.list_faults = lambda instance_uuid: [good, *garbage]  # type: ignore[method-assign]
        self.assertEqual([good["incident_id"]], [e["incident_id"] for e in self.snapshot()])

    def test_no_changes_to_poll(self) -> None:
        # Push datasource: vitrage never polls it, and if it did there would be nothing.
        self.assertEqual([], self.ha_guest_driver().get_changes(DatasourceAction.UPDATE))
