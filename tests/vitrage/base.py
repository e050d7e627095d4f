"""Vitrage 15 in process, set up the way vitrage-graph sets itself up, with the ha_guest datasource."""

from __future__ import annotations

import atexit
import glob
import os
import queue
import shutil
import tempfile
import uuid
from typing import Any, Optional

import fixtures
import yaml
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_db.sqlalchemy import enginefacade
from oslotest import base
from vitrage.api_handler.apis.template import TemplateApis
from vitrage.common import config as vitrage_config
from vitrage.common.constants import DatasourceAction, EdgeLabel, EntityCategory, TemplateStatus, TemplateTypes
from vitrage.common.constants import DatasourceProperties as DSProps
from vitrage.common.constants import VertexProperties as VProps
from vitrage.datasources import utils as datasource_utils
from vitrage.datasources.nova.instance import NOVA_INSTANCE_DATASOURCE
from vitrage.datasources.transformer_base import TransformerBase
from vitrage.entity_graph.processor.processor import Processor
from vitrage.evaluator.scenario_evaluator import ScenarioEvaluator
from vitrage.evaluator.scenario_repository import ScenarioRepository
from vitrage.graph import Direction
from vitrage.graph.driver.networkx_graph import NXGraph
from vitrage.storage import get_connection_from_config
from vitrage.storage.sqlalchemy import models
from vitrage.tests.mocks import mock_driver
from vitrage.tests.mocks import utils as mock_utils

from ha_guest.vitrage import data
from ha_guest.vitrage.datasources.ha_guest import HA_GUEST_DATASOURCE
from ha_guest.vitrage.datasources.ha_guest import properties as props

CONF = cfg.CONF
VALUES_FILE = data.values_file()
TEMPLATE_FILE = data.template_file()

DATASOURCE_TYPES = ["nova.zone", "nova.host", "nova.instance", HA_GUEST_DATASOURCE]
DATASOURCE_PATHS = ["vitrage.datasources", "ha_guest.vitrage.datasources"]

# Vitrage configures its database engine once per process: one sqlite file per test process.
_PROCESS_DIR = tempfile.mkdtemp(prefix="ha-guest-vitrage-")
atexit.register(shutil.rmtree, _PROCESS_DIR, True)

NUM_ZONES, NUM_HOSTS, NUM_INSTANCES = 1, 2, 4


def _values_dir() -> str:
    """Return a values dir as an operator has it: Vitrage's files plus ours."""
    path = os.path.join(_PROCESS_DIR, "datasources_values")
    if not os.path.isdir(path):
        os.makedirs(path)
        for name in glob.glob(os.path.join(mock_utils.get_resources_dir(), "datasources_values", "*.yaml")):
            shutil.copy(name, path)
        shutil.copy(VALUES_FILE, path)
    return path


def write_vitrage_conf(directory: str, **sections: dict[str, str]) -> str:
    """Write a vitrage.conf with the ha_guest datasource enabled; return its path."""
    conf = {
        "datasources": {"types": ",".join(DATASOURCE_TYPES), "path": ",".join(DATASOURCE_PATHS)},
        "entity_graph": {"datasources_values_dir": _values_dir()},
        "database": {"connection": "sqlite:///" + os.path.join(_PROCESS_DIR, "vitrage.db")},
    }
    for name, values in sections.items():
        conf.setdefault(name, {}).update(values)
    path = os.path.join(directory, "vitrage.conf")
    with open(path, "w") as f:
        for name, values in conf.items():
            f.write("[%s]\n" % name)
            f.writelines("%s = %s\n" % item for item in values.items())
    return path


def fault(instance_uuid: str, kind: str = props.FaultKind.MISSED, **extra: Any) -> dict[str, Any]:
    """Return a fault payload as ha_guest's vitrage sink sends it (issue 3's contract)."""
    payload = {
        "instance_uuid": instance_uuid,
        "host": "host-0",
        "incident_id": str(uuid.uuid4()),
        "kind": kind,
        "reason": "no answer to 3 challenges" if kind == props.FaultKind.MISSED else "disk full",
        "detected_at": 1700000000.25,
        "interval_ms": 100,
        "misses": 3 if kind == props.FaultKind.MISSED else 0,
        "state": props.FaultState.ACTIVE,
    }
    payload.update(extra)
    return payload


def cleared(payload: dict[str, Any], cleared_by: str = "recovered") -> dict[str, Any]:
    """Return the cleared notification payload of an active fault."""
    return dict(payload, state=props.FaultState.CLEARED, cleared_at=payload["detected_at"] + 5, cleared_by=cleared_by)


class VitrageTestCase(base.BaseTestCase):
    """vitrage-graph's configuration (parse_config on a vitrage.conf), its processor, its evaluator."""

    def setUp(self) -> None:
        super().setUp()
        self.conf_fixture = self.useFixture(config_fixture.Config(CONF))
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.reset_vitrage_caches()
        self.addCleanup(self.reset_vitrage_caches)
        self.parse_config()
        self.instance_uuid = str(uuid.uuid4())

    def parse_config(self, **sections: dict[str, str]) -> None:
        """Parse a vitrage.conf as vitrage-graph's main() does (config.parse_config(sys.argv))."""
        CONF.reset()  # a second parse in one test, as a restarted vitrage-graph would do
        vitrage_config.parse_config(["vitrage-graph", "--config-file", write_vitrage_conf(self.tmp, **sections)])

    @staticmethod
    def reset_vitrage_caches() -> None:
        """Forget the driver instances and vertex ids Vitrage keeps in module globals."""
        datasource_utils.drivers.clear()
        TransformerBase.key_to_uuid_cache.clear()

    # --- the entity graph -------------------------------------------------------------

    def create_processor(self) -> Processor:
        """Return a processor on a graph holding a zone, hosts and instances (one is self.instance_uuid)."""
        processor = Processor(NXGraph("Entity Graph"))
        snap = {DSProps.DATASOURCE_ACTION: DatasourceAction.INIT_SNAPSHOT}
        generators = mock_driver.simple_zone_generators(NUM_ZONES, NUM_HOSTS, snapshot_events=NUM_ZONES, snap_vals=snap)
        generators += mock_driver.simple_host_generators(NUM_ZONES, NUM_HOSTS, NUM_HOSTS, snap_vals=snap)
        generators += mock_driver.simple_instance_generators(
            host_num=NUM_HOSTS, vm_num=NUM_INSTANCES, snapshot_events=NUM_INSTANCES, snap_vals=snap
        )
        events = mock_driver.generate_sequential_events_list(generators)
        instances = [e for e in events if e[DSProps.ENTITY_TYPE] == NOVA_INSTANCE_DATASOURCE]
        instances[0]["id"] = self.instance_uuid
        for event in events:
            processor.process_event(event)
        return processor

    def ha_guest_driver(self) -> Any:
        """Return our driver the way vitrage-graph gets it (by datasource name, from the config)."""
        return datasource_utils.get_drivers_by_name([HA_GUEST_DATASOURCE])[0]

    def push(self, processor: Processor, event_type: str, payload: dict[str, Any]) -> None:
        """Enrich a notification with our driver and process the event, as vitrage-graph's listener does."""
        event = self.ha_guest_driver().enrich_event(payload, event_type)
        self.assertIsNotNone(event, "the driver rejected a valid %s payload" % event_type)
        processor.process_event(event)

    @staticmethod
    def instance_vertex(processor: Processor, instance_uuid: str) -> Any:
        """Return the nova.instance vertex with id ``instance_uuid``."""
        vertices = processor.entity_graph.get_vertices(
            vertex_attr_filter={VProps.VITRAGE_TYPE: NOVA_INSTANCE_DATASOURCE, VProps.ID: instance_uuid}
        )
        assert len(vertices) == 1, vertices
        return vertices[0]

    @staticmethod
    def alarms_on(processor: Processor, vertex: Any, vitrage_type: str = HA_GUEST_DATASOURCE) -> list[Any]:
        """Return the live alarms of ``vitrage_type`` attached ``on`` ``vertex``."""
        return processor.entity_graph.neighbors(
            vertex.vertex_id,
            vertex_attr_filter={
                VProps.VITRAGE_CATEGORY: EntityCategory.ALARM,
                VProps.VITRAGE_TYPE: vitrage_type,
                VProps.VITRAGE_IS_DELETED: False,
            },
            edge_attr_filter={"relationship_type": EdgeLabel.ON, "vitrage_is_deleted": False},
            direction=Direction.IN,
        )

    @staticmethod
    def live_vertices(processor: Processor, vitrage_type: str) -> list[Any]:
        """Return the vertices of ``vitrage_type`` that are not deleted."""
        return processor.entity_graph.get_vertices(
            vertex_attr_filter={VProps.VITRAGE_TYPE: vitrage_type, VProps.VITRAGE_IS_DELETED: False}
        )

    # --- the evaluator ------------------------------------------------------------------

    def create_db(self) -> Any:
        """Return Vitrage's storage connection on empty tables."""
        db = get_connection_from_config()
        engine = enginefacade.writer.get_engine()
        models.Base.metadata.drop_all(engine)
        models.Base.metadata.create_all(engine)
        return db

    def add_template(self, db: Any, path: str = TEMPLATE_FILE) -> list[dict[str, Any]]:
        """Add a template as `vitrage template add` does, then activate it as the template worker does."""
        with open(path) as f:
            # python-vitrageclient reads templates with BaseLoader: every scalar a string.
            content = yaml.load(f, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds no objects
        notices: list[tuple[str, dict]] = []
        notifier = type("Notifier", (), {"notify": lambda _self, event_type, data: notices.append((event_type, data))})
        rows = TemplateApis(notifier=notifier(), db=db).add_template(None, [(path, content)], TemplateTypes.STANDARD)
        self.assertEqual([("add template", {"template_action": "add"})], notices)
        for template in db.templates.query(status=TemplateStatus.LOADING):
            db.templates.update(template.uuid, "status", TemplateStatus.ACTIVE)
        return rows

    def create_evaluator(self, processor: Processor) -> "queue.Queue[Any]":
        """Attach a ScenarioEvaluator with the templates in the DB; return the queue of its action events."""
        actions: queue.Queue[Any] = queue.Queue()
        self.evaluator = ScenarioEvaluator(
            processor.entity_graph, ScenarioRepository(), lambda _event_type, data: actions.put(data), enabled=True
        )
        return actions

    @staticmethod
    def drain(actions: "queue.Queue[Any]", processor: Processor, limit: int = 100) -> int:
        """Process the evaluator's action events (and the ones they cause) like vitrage-graph does."""
        count = 0
        while not actions.empty():
            data = actions.get()
            for event in data if isinstance(data, list) else [data]:
                processor.process_event(event)
                count += 1
            if count > limit:
                raise AssertionError("the evaluator keeps producing actions: %d events" % count)
        return count

    @staticmethod
    def vertex(processor: Processor, vertex_id: str) -> Optional[Any]:
        """Return the current version of a vertex."""
        return processor.entity_graph.get_vertex(vertex_id)
