"""Pushed ha_guest faults inside Vitrage's own processor and entity graph."""

from __future__ import annotations

import uuid

from vitrage.common.constants import EdgeLabel, EntityCategory
from vitrage.common.constants import VertexProperties as VProps
from vitrage.datasources.nova.instance import NOVA_INSTANCE_DATASOURCE
from vitrage.entity_graph.driver_exec import DriversNotificationEndpoint

from ha_guest.vitrage.datasources.ha_guest import HA_GUEST_DATASOURCE
from ha_guest.vitrage.datasources.ha_guest.properties import EventType, FaultKind
from tests.vitrage import base


class TestPushedFaults(base.VitrageTestCase):
    """Raised and cleared notifications, enriched by our driver, processed by Vitrage's processor."""

    def setUp(self) -> None:
        super().setUp()
        self.processor = self.create_processor()

    def alarm(self) -> object:
        alarms = self.alarms_on(self.processor, self.instance_vertex(self.processor, self.instance_uuid))
        self.assertEqual(1, len(alarms), alarms)
        return alarms[0]

    def test_missed_heartbeat_is_a_critical_alarm_on_the_instance(self) -> None:
        instances_before = len(self.live_vertices(self.processor, NOVA_INSTANCE_DATASOURCE))
        payload = base.fault(self.instance_uuid)
        self.push(self.processor, EventType.RAISED, payload)

        alarm = self.alarm()
        instance = self.instance_vertex(self.processor, self.instance_uuid)
        self.assertEqual(EntityCategory.ALARM, alarm[VProps.VITRAGE_CATEGORY])
        self.assertEqual(HA_GUEST_DATASOURCE, alarm[VProps.VITRAGE_TYPE])
        self.assertEqual(HA_GUEST_DATASOURCE, alarm[VProps.VITRAGE_DATASOURCE_NAME])
        self.assertEqual("Guest heartbeat missed", alarm[VProps.NAME])
        self.assertEqual("Active", alarm[VProps.STATE])
        # Severity comes through etc/vitrage/datasources_values/ha_guest.yaml, not "undefined".
        self.assertEqual("CRITICAL", alarm[VProps.VITRAGE_OPERATIONAL_SEVERITY])
        self.assertEqual(instance.vertex_id, alarm[VProps.VITRAGE_RESOURCE_ID])
        self.assertEqual(NOVA_INSTANCE_DATASOURCE, alarm[VProps.VITRAGE_RESOURCE_TYPE])
        self.assertEqual(payload["incident_id"], alarm[VProps.ID])
        for field in ("host", "incident_id", "kind", "reason", "detected_at", "interval_ms", "misses"):
            self.assertEqual(payload[field], alarm[field], field)
        self.assertEqual("2023-11-14T22:13:20Z", alarm[VProps.UPDATE_TIMESTAMP])
        # The nova.instance placeholder merged into the real instance: no new instance vertex.
        self.assertFalse(instance[VProps.VITRAGE_IS_PLACEHOLDER])
        self.assertEqual(instances_before, len(self.live_vertices(self.processor, NOVA_INSTANCE_DATASOURCE)))
        edge = self.processor.entity_graph.get_edge(alarm.vertex_id, instance.vertex_id, EdgeLabel.ON)
        self.assertIsNotNone(edge)

    def test_unhealthy_guest_is_a_severe_alarm(self) -> None:
        self.push(self.processor, EventType.RAISED, base.fault(self.instance_uuid, FaultKind.UNHEALTHY))
        alarm = self.alarm()
        self.assertEqual("Guest unhealthy", alarm[VProps.NAME])
        self.assertEqual("SEVERE", alarm[VProps.VITRAGE_OPERATIONAL_SEVERITY])

    def test_unknown_kind_is_still_an_alarm(self) -> None:
        # A newer controller's kind: alarmed, with the severity an operator can add to the values file.
        self.push(self.processor, EventType.RAISED, base.fault(self.instance_uuid, "frozen"))
        alarm = self.alarm()
        self.assertEqual("Guest heartbeat fault", alarm[VProps.NAME])
        self.assertEqual("N/A", alarm[VProps.VITRAGE_OPERATIONAL_SEVERITY])

    def test_cleared_fault_deletes_the_alarm(self) -> None:
        payload = base.fault(self.instance_uuid)
        self.push(self.processor, EventType.RAISED, payload)
        alarm_id = self.alarm().vertex_id
        self.push(self.processor, EventType.CLEARED, base.cleared(payload))

        self.assertEqual([], self.alarms_on(self.processor, self.instance_vertex(self.processor, self.instance_uuid)))
        self.assertTrue(self.vertex(self.processor, alarm_id)[VProps.VITRAGE_IS_DELETED])
        self.assertEqual([], self.live_vertices(self.processor, HA_GUEST_DATASOURCE))

    def test_next_incident_is_a_new_alarm(self) -> None:
        first = base.fault(self.instance_uuid)
        self.push(self.processor, EventType.RAISED, first)
        first_id = self.alarm().vertex_id
        self.push(self.processor, EventType.CLEARED, base.cleared(first))
        self.push(self.processor, EventType.RAISED, base.fault(self.instance_uuid))
        self.assertNotEqual(first_id, self.alarm().vertex_id)

    def test_repeated_raise_is_one_alarm(self) -> None:
        payload = base.fault(self.instance_uuid)
        self.push(self.processor, EventType.RAISED, payload)
        alarm_id = self.alarm().vertex_id
        self.push(self.processor, EventType.RAISED, payload)
        self.assertEqual(alarm_id, self.alarm().vertex_id)
        self.assertEqual(1, len(self.live_vertices(self.processor, HA_GUEST_DATASOURCE)))

    def test_two_instances_two_alarms(self) -> None:
        self.push(self.processor, EventType.RAISED, base.fault(self.instance_uuid))
        other = str(uuid.uuid4())
        self.push(self.processor, EventType.RAISED, base.fault(other))
        self.alarm()
        self.assertEqual(2, len(self.live_vertices(self.processor, HA_GUEST_DATASOURCE)))

    def test_alarm_before_its_instance_is_known(self) -> None:
        # Nova's snapshot may come after the fault: the placeholder becomes the real instance.
        late = str(uuid.uuid4())
        self.push(self.processor, EventType.RAISED, base.fault(late))
        placeholder = self.instance_vertex(self.processor, late)
        self.assertTrue(placeholder[VProps.VITRAGE_IS_PLACEHOLDER])
        self.assertEqual(1, len(self.alarms_on(self.processor, placeholder)))

    def test_clear_of_an_unknown_fault_changes_nothing(self) -> None:
        before = self.processor.entity_graph.num_vertices()
        self.push(self.processor, EventType.CLEARED, base.cleared(base.fault(self.instance_uuid)))
        self.assertEqual(before, self.processor.entity_graph.num_vertices())
        self.assertEqual([], self.live_vertices(self.processor, HA_GUEST_DATASOURCE))

    def test_fault_without_incident_id(self) -> None:
        payload = base.fault(self.instance_uuid, incident_id=None)
        self.push(self.processor, EventType.RAISED, payload)
        self.assertEqual(FaultKind.MISSED, self.alarm()[VProps.ID])
        self.push(self.processor, EventType.CLEARED, base.cleared(payload))
        self.assertEqual([], self.live_vertices(self.processor, HA_GUEST_DATASOURCE))


class TestGarbage(base.VitrageTestCase):
    """Anything that is not a fault never reaches the processor."""

    GARBAGE = (
        None,
        [],
        "a string",
        {},
        {"instance_uuid": "not-a-uuid", "kind": "missed"},
        {"kind": "missed"},
        {"instance_uuid": "8a0c33d9-5d35-4c3b-9d5e-a8f0e8e4c2b1"},
        {"instance_uuid": "8a0c33d9-5d35-4c3b-9d5e-a8f0e8e4c2b1", "kind": ""},
        {"instance_uuid": "8a0c33d9-5d35-4c3b-9d5e-a8f0e8e4c2b1", "kind": 7},
        {"instance_uuid": "8a0c33d9-5d35-4c3b-9d5e-a8f0e8e4c2b1", "kind": "missed", "incident_id": 12},
        {"instance_uuid": ["8a0c33d9-5d35-4c3b-9d5e-a8f0e8e4c2b1"], "kind": "missed"},
        {"instance_uuid": "8a0c33d9-5d35-4c3b-9d5e-a8f0e8e4c2b1", "kind": "x" * 65},
    )

    def test_rejected_by_the_driver(self) -> None:
        driver = self.ha_guest_driver()
        for payload in self.GARBAGE:
            for event_type in (EventType.RAISED, EventType.CLEARED):
                self.assertIsNone(driver.enrich_event(payload, event_type), (payload, event_type))

    def test_other_event_types_rejected(self) -> None:
        driver = self.ha_guest_driver()
        self.assertIsNone(driver.enrich_event(base.fault(self.instance_uuid), "ha_guest.heartbeat.fault.bogus"))

    def test_listener_passes_nothing_on(self) -> None:
        processed: list = []
        endpoint = DriversNotificationEndpoint(processed.extend).init()
        for payload in self.GARBAGE:
            endpoint.info({}, "ha_guest.controller.c1", EventType.RAISED, payload, {})
        self.assertEqual([], processed)

    def test_unknown_fields_and_bad_values_dropped(self) -> None:
        payload = base.fault(
            self.instance_uuid, reason="r" * 5000, misses=float("nan"), interval_ms=True, extra={"nested": 1}
        )
        event = self.ha_guest_driver().enrich_event(payload, EventType.RAISED)
        self.assertEqual(1024, len(event["reason"]))
        for field in ("misses", "interval_ms", "extra"):
            self.assertNotIn(field, event)
        processor = self.create_processor()
        processor.process_event(event)
        self.assertEqual(1, len(self.live_vertices(processor, HA_GUEST_DATASOURCE)))
