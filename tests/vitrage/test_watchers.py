"""The watchers' alarms inside Vitrage: a silent compute agent on its nova.host, a never-registered guest."""

from __future__ import annotations

import time
import uuid
from typing import Any, Optional

import oslo_messaging
from vitrage import messaging as vitrage_messaging
from vitrage.common.constants import DatasourceAction
from vitrage.common.constants import VertexProperties as VProps
from vitrage.datasources.nova.host import NOVA_HOST_DATASOURCE
from vitrage.evaluator.actions.evaluator_event_transformer import VITRAGE_DATASOURCE

from ha_guest.controller.endpoint import ControllerEndpoint
from ha_guest.rpc import transport as rpc_transport
from ha_guest.vitrage.datasources.ha_guest import HA_GUEST_DATASOURCE
from ha_guest.vitrage.datasources.ha_guest.properties import EventType
from tests.vitrage import base, test_resync


def host_fault(host: str, **extra: Any) -> dict[str, Any]:
    """Return a host fault as the controller's sinks send it."""
    payload = {"host": host, "kind": "agent_silent", "incident_id": uuid.uuid4().hex, "detected_at": 1700000100.0,
               "last_report_at": 1700000025.0, "state": "active", "cleared_at": None, "cleared_by": None}
    payload.update(extra)
    return payload


def unregistered(instance_uuid: str, **extra: Any) -> dict[str, Any]:
    """Return an unregistered-instance alarm as the controller's sinks send it."""
    payload = {"instance_uuid": instance_uuid, "host": "host-0", "kind": "unregistered",
               "incident_id": uuid.uuid4().hex, "since": 1700000000.0, "detected_at": 1700000300.0,
               "state": "active", "cleared_at": None, "cleared_by": None}
    payload.update(extra)
    return payload


def cleared(payload: dict[str, Any], cleared_by: str) -> dict[str, Any]:
    return dict(payload, state="cleared", cleared_at=payload["detected_at"] + 60, cleared_by=cleared_by)


class WatchersCase(base.VitrageTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.db = self.create_db()
        self.add_template(self.db)
        self.processor = self.create_processor()
        self.actions = self.create_evaluator(self.processor)
        self.host = self.host_vertices()[0]

    def host_vertices(self) -> list[Any]:
        return self.live_vertices(self.processor, NOVA_HOST_DATASOURCE)

    def push_and_evaluate(self, event_type: str, payload: dict[str, Any]) -> None:
        self.push(self.processor, event_type, payload)
        self.drain(self.actions, self.processor)


class TestHostFault(WatchersCase):

    def test_raised_is_an_alarm_on_the_nova_host_and_cleared_deletes_it(self) -> None:
        hosts_before = len(self.host_vertices())
        payload = host_fault(self.host[VProps.ID])
        self.push_and_evaluate(EventType.HOST_RAISED, payload)

        (alarm,) = self.alarms_on(self.processor, self.host)
        self.assertEqual("Guest monitoring down", alarm[VProps.NAME])
        self.assertEqual(HA_GUEST_DATASOURCE, alarm[VProps.VITRAGE_TYPE])
        self.assertEqual("SEVERE", alarm[VProps.VITRAGE_OPERATIONAL_SEVERITY])
        self.assertEqual(self.host.vertex_id, alarm[VProps.VITRAGE_RESOURCE_ID])
        self.assertEqual(NOVA_HOST_DATASOURCE, alarm[VProps.VITRAGE_RESOURCE_TYPE])
        self.assertEqual(payload["incident_id"], alarm[VProps.ID])
        self.assertEqual(payload["last_report_at"], alarm["last_report_at"])
        # Merged into the real host (no placeholder), and no instance was taken down by the template.
        self.assertEqual(hosts_before, len(self.host_vertices()))
        instance = self.instance_vertex(self.processor, self.instance_uuid)
        self.assertFalse(instance.get(VProps.IS_MARKED_DOWN, False))
        self.assertEqual([], self.alarms_on(self.processor, instance, VITRAGE_DATASOURCE))

        self.push_and_evaluate(EventType.HOST_CLEARED, cleared(payload, "reported"))
        self.assertEqual([], self.alarms_on(self.processor, self.host))
        self.assertEqual([], self.live_vertices(self.processor, HA_GUEST_DATASOURCE))

    def test_host_and_instance_alarms_side_by_side(self) -> None:
        fault = base.fault(self.instance_uuid)
        self.push_and_evaluate(EventType.RAISED, fault)
        down = host_fault(self.host[VProps.ID])
        self.push_and_evaluate(EventType.HOST_RAISED, down)
        self.push_and_evaluate(EventType.HOST_CLEARED, cleared(down, "reported"))
        instance = self.instance_vertex(self.processor, self.instance_uuid)
        self.assertEqual([fault["incident_id"]], [a[VProps.ID] for a in self.alarms_on(self.processor, instance)])
        self.assertTrue(instance[VProps.IS_MARKED_DOWN])  # the guest fault still holds the instance down

    def test_not_a_host_fault_is_refused(self) -> None:
        driver = self.ha_guest_driver()
        for payload in (host_fault(""), host_fault(None), host_fault("h" * 300), dict(host_fault("x"), kind=None)):
            self.assertIsNone(driver.enrich_event(payload, EventType.HOST_RAISED))


class TestUnregistered(WatchersCase):

    def test_alarm_on_the_instance_takes_nothing_down(self) -> None:
        payload = unregistered(self.instance_uuid)
        self.push_and_evaluate(EventType.UNREGISTERED_RAISED, payload)

        instance = self.instance_vertex(self.processor, self.instance_uuid)
        (alarm,) = self.alarms_on(self.processor, instance)
        self.assertEqual("Guest never registered", alarm[VProps.NAME])
        self.assertEqual("WARNING", alarm[VProps.VITRAGE_OPERATIONAL_SEVERITY])
        self.assertEqual(payload["since"], alarm["since"])
        # The template's heartbeat scenario leaves it alone: not ERROR, not marked down, no deduced alarm.
        self.assertEqual("ACTIVE", instance[VProps.VITRAGE_AGGREGATED_STATE])
        self.assertFalse(instance.get(VProps.IS_MARKED_DOWN, False))
        self.assertEqual([], self.alarms_on(self.processor, instance, VITRAGE_DATASOURCE))

        self.push_and_evaluate(EventType.UNREGISTERED_CLEARED, cleared(payload, "registered"))
        self.assertEqual([], self.alarms_on(self.processor, instance))

    def test_a_heartbeat_fault_still_takes_the_instance_down(self) -> None:
        self.push_and_evaluate(EventType.UNREGISTERED_RAISED, unregistered(self.instance_uuid))
        self.push_and_evaluate(EventType.RAISED, base.fault(self.instance_uuid))
        instance = self.instance_vertex(self.processor, self.instance_uuid)
        self.assertTrue(instance[VProps.IS_MARKED_DOWN])
        self.assertEqual(["Instance unavailable"],
                         [a[VProps.NAME] for a in self.alarms_on(self.processor, instance, VITRAGE_DATASOURCE)])


class FakeWatch:
    """The part of the controller's Watchers the 1.3 listings use."""

    def __init__(self) -> None:
        self.host_faults: list[dict[str, Any]] = []
        self.unregistered: list[dict[str, Any]] = []

    def list_host_faults(self, host: Optional[str] = None) -> list[dict[str, Any]]:
        return list(self.host_faults)

    def list_unregistered(self, host: Optional[str] = None) -> list[dict[str, Any]]:
        return list(self.unregistered)


class TestWatchResync(base.VitrageTestCase):
    """get_all brings the open host faults and the announced unregistered instances (ControllerAPI 1.3)."""

    def setUp(self) -> None:
        super().setUp()
        self.topic = "ha_guest_controller_%s" % uuid.uuid4().hex
        self.parse_config(ha_guest={"controller_topic": self.topic, "controller_transport_url": "fake:/",
                                    "controller_call_timeout": "5"})
        self.handler = test_resync.FakeHandler()
        self.processor = self.create_processor()

    start_controller = test_resync.TestResync.start_controller
    snapshot = test_resync.TestResync.snapshot
    live_alarms = test_resync.TestResync.live_alarms

    def start_watching_controller(self) -> FakeWatch:
        watch = FakeWatch()
        transport = vitrage_messaging.get_rpc_transport("fake:/")
        target = oslo_messaging.Target(topic=self.topic, server="controller-1", exchange="ha_guest")
        server = rpc_transport.get_rpc_server(transport, target,
                                              [ControllerEndpoint(self.handler, watch=watch)])  # type: ignore[arg-type]
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)
        return watch

    def test_snapshot_brings_host_faults_and_announced_unregistered(self) -> None:
        watch = self.start_watching_controller()
        host = self.live_vertices(self.processor, NOVA_HOST_DATASOURCE)[0][VProps.ID]
        down = host_fault(host)
        announced = unregistered(self.instance_uuid)
        watch.host_faults = [down]
        watch.unregistered = [
            {"instance_uuid": self.instance_uuid, "host": "host-0", "since": 1.0, "overdue": True, "alarm": announced},
            {"instance_uuid": str(uuid.uuid4()), "host": "host-0", "since": 2.0, "overdue": False, "alarm": None},
        ]
        events = self.snapshot(DatasourceAction.INIT_SNAPSHOT)
        self.assertEqual(sorted([down["incident_id"], announced["incident_id"]]),
                         sorted(e["incident_id"] for e in events))
        self.assertEqual(2, len(self.live_alarms()))

        # The agent came back while Vitrage missed the clear: the next snapshot clears it.
        watch.host_faults = []
        events = self.snapshot()
        self.assertEqual([(down["incident_id"], "cleared")],
                         [(e["incident_id"], e["state"]) for e in events if e["state"] == "cleared"])
        self.assertEqual([announced["incident_id"]], [v[VProps.ID] for v in self.live_alarms()])

    def test_older_controller_keeps_the_pushed_host_alarm(self) -> None:
        # ControllerEndpoint without watchers answers [], an older controller (< 1.3) refuses the version:
        # either way the pushed host alarm must stay unless the listing says otherwise.
        self.start_controller()  # the endpoint serves 1.3 with no watchers: lists are empty
        host = self.live_vertices(self.processor, NOVA_HOST_DATASOURCE)[0][VProps.ID]
        self.push(self.processor, EventType.HOST_RAISED, host_fault(host))
        driver = self.ha_guest_driver()
        original = driver._list_watch

        def refuse(method: str) -> list:
            raise RuntimeError("UnsupportedVersion: Endpoint does not support RPC version 1.3")

        driver._list_watch = refuse  # type: ignore[method-assign]
        self.assertEqual([], self.snapshot())
        self.assertEqual(1, len(self.live_alarms()))
        driver._list_watch = original  # type: ignore[method-assign]
        started = time.monotonic()
        events = self.snapshot()
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(["cleared"], [e["state"] for e in events])
