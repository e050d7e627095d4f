"""etc/vitrage/templates/ha_guest_heartbeat.yaml inside Vitrage's own template API and scenario evaluator."""

from __future__ import annotations

import json
from typing import Any

import yaml
from vitrage.api_handler.apis.template import TemplateApis
from vitrage.common.constants import EdgeLabel, TemplateStatus, TemplateTypes
from vitrage.common.constants import VertexProperties as VProps
from vitrage.evaluator.actions.evaluator_event_transformer import VITRAGE_DATASOURCE
from vitrage.graph import Direction

from ha_guest.vitrage.datasources.ha_guest import HA_GUEST_DATASOURCE
from ha_guest.vitrage.datasources.ha_guest.properties import EventType, FaultKind
from tests.vitrage import base


class TestTemplate(base.VitrageTestCase):
    """The template, loaded through the template API into sqlite, drives the instance's state."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.create_db()
        self.rows = self.add_template(self.db)
        self.processor = self.create_processor()
        self.actions = self.create_evaluator(self.processor)

    def instance(self) -> object:
        return self.instance_vertex(self.processor, self.instance_uuid)

    def deduced_alarms(self) -> list:
        return self.alarms_on(self.processor, self.instance(), VITRAGE_DATASOURCE)

    def causes_of(self, alarm: Any) -> list[str]:
        """Return the ids of the alarms with a live ``causes`` edge to ``alarm``."""
        edges = self.processor.entity_graph.get_edges(
            alarm.vertex_id,
            direction=Direction.IN,
            attr_filter={"relationship_type": EdgeLabel.CAUSES, "vitrage_is_deleted": False},
        )
        return [edge.source_id for edge in edges]

    def raise_fault(self, kind: str = FaultKind.MISSED) -> dict:
        payload = base.fault(self.instance_uuid, kind)
        self.push(self.processor, EventType.RAISED, payload)
        self.drain(self.actions, self.processor)
        return payload

    def test_template_validates_and_loads(self) -> None:
        with open(base.TEMPLATE_FILE) as f:
            content = yaml.load(f, Loader=yaml.BaseLoader)  # noqa: S506 - as python-vitrageclient reads it
        result = json.loads(
            TemplateApis(db=self.db).validate_template(None, [(base.TEMPLATE_FILE, content)], TemplateTypes.STANDARD)
        )
        self.assertEqual("validation OK", result["results"][0]["status"], result)
        self.assertEqual(["ha_guest_heartbeat"], [row["name"] for row in self.rows])
        statuses = [t.status for t in self.db.templates.query(name="ha_guest_heartbeat")]
        self.assertEqual([TemplateStatus.ACTIVE], statuses)
        self.assertEqual(1, len(self.evaluator.scenario_repo.templates))

    def test_instance_state_before_any_fault(self) -> None:
        instance = self.instance()
        self.assertEqual("ACTIVE", instance[VProps.VITRAGE_AGGREGATED_STATE])
        self.assertFalse(instance.get(VProps.IS_MARKED_DOWN, False))
        self.assertEqual([], self.deduced_alarms())

    def test_fault_takes_the_instance_down(self) -> None:
        self.raise_fault()
        instance = self.instance()
        self.assertEqual("ERROR", instance[VProps.VITRAGE_AGGREGATED_STATE])
        self.assertEqual("ERROR", instance[VProps.VITRAGE_OPERATIONAL_STATE])
        self.assertTrue(instance[VProps.IS_MARKED_DOWN])

        deduced = self.deduced_alarms()
        self.assertEqual(["Instance unavailable"], [a[VProps.NAME] for a in deduced])
        self.assertEqual("CRITICAL", deduced[0][VProps.VITRAGE_OPERATIONAL_SEVERITY])
        # Root cause: our alarm causes the deduced one.
        (ours,) = self.alarms_on(self.processor, instance)
        self.assertEqual([ours.vertex_id], self.causes_of(deduced[0]))

    def test_unhealthy_guest_also_takes_the_instance_down(self) -> None:
        self.raise_fault(FaultKind.UNHEALTHY)
        self.assertEqual("ERROR", self.instance()[VProps.VITRAGE_AGGREGATED_STATE])
        self.assertTrue(self.instance()[VProps.IS_MARKED_DOWN])
        self.assertEqual(1, len(self.deduced_alarms()))

    def test_clear_undoes_everything(self) -> None:
        payload = self.raise_fault()
        self.push(self.processor, EventType.CLEARED, base.cleared(payload))
        self.drain(self.actions, self.processor)

        instance = self.instance()
        self.assertEqual("ACTIVE", instance[VProps.VITRAGE_AGGREGATED_STATE])
        self.assertEqual("OK", instance[VProps.VITRAGE_OPERATIONAL_STATE])
        self.assertFalse(instance[VProps.IS_MARKED_DOWN])
        self.assertEqual([], self.deduced_alarms())
        self.assertEqual([], self.alarms_on(self.processor, instance))
        self.assertEqual([], self.live_vertices(self.processor, HA_GUEST_DATASOURCE))
        self.assertEqual([], self.live_vertices(self.processor, VITRAGE_DATASOURCE))

    def test_instance_stays_down_until_its_last_fault_clears(self) -> None:
        first = self.raise_fault(FaultKind.MISSED)
        second = self.raise_fault(FaultKind.UNHEALTHY)
        self.push(self.processor, EventType.CLEARED, base.cleared(first))
        self.drain(self.actions, self.processor)
        self.assertEqual("ERROR", self.instance()[VProps.VITRAGE_AGGREGATED_STATE])
        self.assertTrue(self.instance()[VProps.IS_MARKED_DOWN])
        (deduced,) = self.deduced_alarms()
        (remaining,) = self.alarms_on(self.processor, self.instance())
        self.assertEqual(second["incident_id"], remaining[VProps.ID])
        self.assertEqual([remaining.vertex_id], self.causes_of(deduced))
        # Every vertex is a real one (see the template's note on causing_alarm).
        self.assertEqual([], [v for v in self.processor.entity_graph.get_vertices() if "get_attr" in v.vertex_id])

        self.push(self.processor, EventType.CLEARED, base.cleared(second))
        self.drain(self.actions, self.processor)
        self.assertEqual("ACTIVE", self.instance()[VProps.VITRAGE_AGGREGATED_STATE])
        self.assertFalse(self.instance()[VProps.IS_MARKED_DOWN])
        self.assertEqual([], self.deduced_alarms())

    def test_other_instances_untouched(self) -> None:
        self.raise_fault()
        others = [
            v for v in self.live_vertices(self.processor, "nova.instance") if v[VProps.ID] != self.instance_uuid
        ]
        self.assertEqual(base.NUM_INSTANCES - 1, len(others))
        for other in others:
            self.assertEqual("ACTIVE", other[VProps.VITRAGE_AGGREGATED_STATE])
            self.assertFalse(other.get(VProps.IS_MARKED_DOWN, False))
