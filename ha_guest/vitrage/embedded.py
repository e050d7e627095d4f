"""vitrage-graph's entity graph inside this process: listener, processor, evaluator and our template.

Used by the demo and the chain tests. It is set up the way vitrage-graph
sets itself up (``parse_config`` on a vitrage.conf with the ha_guest
datasource, the template added through Vitrage's template API into its
database), then runs the pieces vitrage-graph runs: Vitrage's own
notification listener (``DriversNotificationEndpoint``: every push
datasource's ``enrich_event``), the ``Processor`` on an ``NXGraph`` and a
``ScenarioEvaluator`` whose actions are fed back to the processor. Unlike
vitrage-graph, everything runs in one worker thread of this process (no
evaluator worker processes, no graph persistence): enough to show an
ha_guest fault turn into an alarm on its instance.

Vitrage keeps its configuration in the global ``cfg.CONF`` and its database
engine per process: one EmbeddedVitrage per process.
"""

from __future__ import annotations

import glob
import os
import queue
import shutil
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

import oslo_messaging
import yaml
from oslo_config import cfg
from oslo_db.sqlalchemy import enginefacade
from vitrage import messaging as vitrage_messaging
from vitrage.api_handler.apis.template import TemplateApis
from vitrage.common import config as vitrage_config
from vitrage.common.constants import EdgeLabel, EntityCategory, TemplateStatus, TemplateTypes
from vitrage.common.constants import VertexProperties as VProps
from vitrage.datasources import utils as datasource_utils
from vitrage.datasources.nova.instance import NOVA_INSTANCE_DATASOURCE
from vitrage.datasources.transformer_base import TransformerBase
from vitrage.entity_graph.driver_exec import DriversNotificationEndpoint
from vitrage.entity_graph.processor.processor import Processor
from vitrage.evaluator.scenario_evaluator import ScenarioEvaluator
from vitrage.evaluator.scenario_repository import ScenarioRepository
from vitrage.graph import Direction
from vitrage.graph.driver.networkx_graph import NXGraph
from vitrage.storage import get_connection_from_config
from vitrage.storage.sqlalchemy import models
from vitrage.tests.mocks import utils as vitrage_resources

from ha_guest.vitrage import data
from ha_guest.vitrage.datasources.ha_guest import HA_GUEST_DATASOURCE

CONF = cfg.CONF

DATASOURCE_TYPES = ("nova.host", NOVA_INSTANCE_DATASOURCE, HA_GUEST_DATASOURCE)
DATASOURCE_PATHS = ("vitrage.datasources", "ha_guest.vitrage.datasources")
#: Actions the evaluator may chain off one batch before we call it a loop.
MAX_ACTIONS_PER_BATCH = 1000


@dataclass(frozen=True, order=True)
class AlarmView:
    """One live alarm on an instance."""

    name: str
    vitrage_type: str
    severity: str  # Vitrage's operational severity
    alarm_id: str  # the incident id for ha_guest alarms


@dataclass(frozen=True)
class InstanceView:
    """What the entity graph says about one nova.instance."""

    instance_uuid: str
    state: str  # vitrage_aggregated_state
    marked_down: bool
    alarms: tuple[AlarmView, ...]

    def alarms_of(self, vitrage_type: str) -> list[AlarmView]:
        """Return the alarms of one type (ha_guest: ours; vitrage: deduced by the template)."""
        return [alarm for alarm in self.alarms if alarm.vitrage_type == vitrage_type]


def write_config(workdir: str, transport_url: str, topics: list[str], log_file: Optional[str] = None,
                 **sections: dict[str, str]) -> str:
    """Write a vitrage.conf enabling the ha_guest datasource; return its path."""
    values_dir = os.path.join(workdir, "datasources_values")
    os.makedirs(values_dir, exist_ok=True)
    # Vitrage's wheel ships its own values files only with its test resources.
    for name in glob.glob(os.path.join(vitrage_resources.get_resources_dir(), "datasources_values", "*.yaml")):
        shutil.copy(name, values_dir)
    shutil.copy(data.values_file(), values_dir)
    conf: dict[str, dict[str, str]] = {
        "DEFAULT": {"transport_url": transport_url},
        "datasources": {"types": ",".join(DATASOURCE_TYPES), "path": ",".join(DATASOURCE_PATHS),
                        "notification_topics": ",".join(topics)},
        "entity_graph": {"datasources_values_dir": values_dir},
        "database": {"connection": "sqlite:///" + os.path.join(workdir, "vitrage.db")},
    }
    if log_file:
        conf["DEFAULT"]["log_file"] = log_file
    for name, values in sections.items():
        conf.setdefault(name, {}).update(values)
    path = os.path.join(workdir, "vitrage.conf")
    with open(path, "w", encoding="utf-8") as handle:
        for name, values in conf.items():
            handle.write("[%s]\n" % name)
            handle.writelines("%s = %s\n" % item for item in values.items())
    return path


def parse_config(path: str) -> None:
    """Parse a vitrage.conf as vitrage-graph's main() does (into the global cfg.CONF)."""
    # Module-level caches of a previous configuration (tests parse more than once per process).
    datasource_utils.drivers.clear()
    TransformerBase.key_to_uuid_cache.clear()
    vitrage_messaging.TRANSPORTS.clear()
    CONF.reset()
    vitrage_config.parse_config(["vitrage-graph", "--config-file", path])


def add_template(path: str) -> Any:
    """Create Vitrage's tables, add a template as `vitrage template add` does and activate it; return the DB."""
    db = get_connection_from_config()
    engine = enginefacade.writer.get_engine()
    models.Base.metadata.drop_all(engine)
    models.Base.metadata.create_all(engine)
    with open(path, encoding="utf-8") as handle:
        # python-vitrageclient reads templates with BaseLoader: every scalar a string.
        content = yaml.load(handle, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds no objects

    class _Quiet:
        """The API's notifier: the evaluator below reads the templates from the DB anyway."""

        def notify(self, event_type: str, payload: Any) -> None:
            pass

    rows = TemplateApis(notifier=_Quiet(), db=db).add_template(None, [(path, content)], TemplateTypes.STANDARD)
    errors = [row for row in rows if row.get("status") == TemplateStatus.ERROR]
    if errors:
        raise RuntimeError("Vitrage refused template %s: %s" % (path, errors))
    # What vitrage-graph's template worker does once it loaded them.
    for template in db.templates.query(status=TemplateStatus.LOADING):
        db.templates.update(template.uuid, "status", TemplateStatus.ACTIVE)
    return db


class EmbeddedVitrage:
    """Vitrage's listener, processor and evaluator, run by one thread of this process."""

    def __init__(self, workdir: str, transport_url: str = "fake:/", topics: Optional[list[str]] = None,
                 log_file: Optional[str] = None, template: Optional[str] = None,
                 sections: Optional[dict[str, dict[str, str]]] = None) -> None:
        self.workdir = workdir
        self.sections = sections or {}
        self.transport_url = transport_url
        self.topics = list(topics or ["vitrage_notifications"])
        self.log_file = log_file
        self.template = template or data.template_file()
        self.processor: Optional[Processor] = None
        self._events: queue.Queue[Optional[list[dict[str, Any]]]] = queue.Queue()
        self._actions: queue.Queue[Any] = queue.Queue()
        self._listener: Optional[oslo_messaging.MessageHandlingServer] = None
        self._thread: Optional[threading.Thread] = None
        self._cond = threading.Condition()
        self._views: dict[str, InstanceView] = {}
        self._watched: set[str] = set()
        self._observers: list[Callable[[InstanceView], None]] = []
        self.batches = 0

    # -- life cycle -----------------------------------------------------------------------------

    def configure(self) -> None:
        """Parse vitrage.conf and load the template into a fresh database (the slow part, ~2 s)."""
        os.makedirs(self.workdir, exist_ok=True)
        parse_config(write_config(self.workdir, self.transport_url, self.topics, self.log_file, **self.sections))
        add_template(self.template)

    def start(self) -> None:
        """Build the graph and evaluator, start vitrage-graph's notification listener and the worker."""
        self.processor = Processor(NXGraph("Entity Graph"))
        # Subscribes itself to the graph: every change is evaluated against the templates.
        self.evaluator = ScenarioEvaluator(self.processor.entity_graph, ScenarioRepository(),
                                           lambda _event_type, actions: self._actions.put(actions), enabled=True)
        self._thread = threading.Thread(target=self._run, name="vitrage-graph", daemon=True)
        self._thread.start()
        self._listener = DriversNotificationEndpoint(self._events.put).init().get_listener()
        self._listener.start()

    def stop(self) -> None:
        """Stop the listener and the worker; safe to call twice."""
        if self._listener is not None:
            self._listener.stop()
            self._listener.wait()
            self._listener = None
        if self._thread is not None:
            self._events.put(None)
            self._thread.join(5.0)
            self._thread = None
        for transport in list(vitrage_messaging.TRANSPORTS.values()):
            transport.cleanup()
        vitrage_messaging.TRANSPORTS.clear()

    @property
    def notification_transport(self) -> oslo_messaging.Transport:
        """The transport vitrage-graph's listener uses (share it for the in-process fake driver)."""
        return vitrage_messaging.get_transport()

    def nova_instance_created(self, instance_uuid: str, host: str, name: str) -> None:
        """Send what nova-compute sends when a server is built (versioned instance.create.end).

        It goes through the same listener, to Vitrage's own nova.instance
        datasource: the instance enters the graph the way it does in a cloud.
        """
        notifier = oslo_messaging.Notifier(self.notification_transport, publisher_id="nova-compute:%s" % host,
                                           driver="messagingv2", topics=self.topics)
        payload = {"nova_object.name": "InstanceActionPayload", "nova_object.namespace": "nova",
                   "nova_object.version": "1.8",
                   "nova_object.data": {"uuid": instance_uuid, "host": host, "host_name": name,
                                        "display_name": name, "state": "active", "power_state": "running",
                                        "task_state": None, "tenant_id": "demo"}}
        notifier.info({}, "instance.create.end", payload)

    # -- what the graph says --------------------------------------------------------------------

    def watch(self, instance_uuid: str) -> None:
        """Keep a view of this instance after every batch of events."""
        with self._cond:
            self._watched.add(instance_uuid)

    def subscribe(self, observer: Callable[[InstanceView], None]) -> None:
        """Call ``observer(view)`` (in the worker thread) whenever a watched instance's view changes."""
        self._observers.append(observer)

    def view(self, instance_uuid: str) -> Optional[InstanceView]:
        """Return the latest view of a watched instance (None until it is in the graph)."""
        with self._cond:
            return self._views.get(instance_uuid)

    def wait_for(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """Wait until ``predicate()`` (re-evaluated after each batch) is truthy; return it, or None on timeout."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout) or None

    # -- the worker -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._events.get()
            if batch is None:
                return
            try:
                self._process(batch)
            except Exception:  # noqa: BLE001 - vitrage-graph logs and goes on too
                import logging

                logging.getLogger(__name__).exception("processing %d event(s) failed", len(batch))

    def _process(self, batch: list[dict[str, Any]]) -> None:
        assert self.processor is not None
        for event in batch:
            self.processor.process_event(event)
        count = 0
        while not self._actions.empty():
            actions = self._actions.get()
            for event in actions if isinstance(actions, list) else [actions]:
                self.processor.process_event(event)
                count += 1
            if count > MAX_ACTIONS_PER_BATCH:
                raise RuntimeError("the evaluator keeps producing actions: %d events" % count)
        self.batches += 1
        changed = []
        with self._cond:
            for instance_uuid in self._watched:
                view = self._instance_view(instance_uuid)
                if view is not None and view != self._views.get(instance_uuid):
                    self._views[instance_uuid] = view
                    changed.append(view)
            self._cond.notify_all()
        for view in changed:
            for observer in self._observers:
                observer(view)

    def _instance_view(self, instance_uuid: str) -> Optional[InstanceView]:
        assert self.processor is not None
        graph = self.processor.entity_graph
        vertices = graph.get_vertices(vertex_attr_filter={
            VProps.VITRAGE_TYPE: NOVA_INSTANCE_DATASOURCE, VProps.ID: instance_uuid, VProps.VITRAGE_IS_DELETED: False})
        if not vertices:
            return None
        vertex = vertices[0]
        alarms = graph.neighbors(
            vertex.vertex_id,
            vertex_attr_filter={VProps.VITRAGE_CATEGORY: EntityCategory.ALARM, VProps.VITRAGE_IS_DELETED: False},
            edge_attr_filter={"relationship_type": EdgeLabel.ON, "vitrage_is_deleted": False},
            direction=Direction.IN)
        views = sorted(AlarmView(str(a.get(VProps.NAME)), str(a.get(VProps.VITRAGE_TYPE)),
                                 str(a.get(VProps.VITRAGE_OPERATIONAL_SEVERITY)), str(a.get(VProps.ID)))
                       for a in alarms)
        return InstanceView(instance_uuid, str(vertex.get(VProps.VITRAGE_AGGREGATED_STATE)),
                            bool(vertex.get(VProps.IS_MARKED_DOWN, False)), tuple(views))
