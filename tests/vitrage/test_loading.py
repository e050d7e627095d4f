"""vitrage-graph finds, configures and wires the ha_guest datasource from vitrage.conf alone."""

from __future__ import annotations

import sys

from oslo_config import cfg
from vitrage.common.constants import DatasourceOpts, UpdateMethod
from vitrage.datasources import utils as datasource_utils
from vitrage.entity_graph.consistency.consistency_enforcer import ConsistencyEnforcer
from vitrage.entity_graph.driver_exec import DriversNotificationEndpoint
from vitrage.entity_graph.mappings.datasource_info_mapper import DatasourceInfoMapper
from vitrage.entity_graph.processor.transformer_manager import TransformerManager
from vitrage.graph.driver.networkx_graph import NXGraph

from ha_guest.vitrage.datasources import ha_guest as datasource
from ha_guest.vitrage.datasources.ha_guest.driver import HAGuestDriver
from ha_guest.vitrage.datasources.ha_guest.properties import EventType
from ha_guest.vitrage.datasources.ha_guest.transformer import HAGuestTransformer
from tests.vitrage import base

CONF = cfg.CONF


class TestLoading(base.VitrageTestCase):
    """[datasources] types/path in a vitrage.conf, parsed by vitrage's own parse_config."""

    def test_options_registered_from_the_configured_path(self) -> None:
        group = CONF[datasource.HA_GUEST_DATASOURCE]
        self.assertEqual("ha_guest.vitrage.datasources.ha_guest.driver.HAGuestDriver", group.driver)
        self.assertEqual("ha_guest.vitrage.datasources.ha_guest.transformer.HAGuestTransformer", group.transformer)
        self.assertEqual(UpdateMethod.PUSH, group.update_method)
        self.assertEqual("ha_guest_controller", group.controller_topic)
        self.assertEqual("ha_guest", group.controller_exchange)

    def test_option_names_are_vitrages(self) -> None:
        # OPTS spells Vitrage's names out so that the module imports without Vitrage.
        names = {opt.name for opt in datasource.OPTS}
        self.assertTrue({DatasourceOpts.TRANSFORMER, DatasourceOpts.DRIVER, DatasourceOpts.UPDATE_METHOD} <= names)
        self.assertEqual([(datasource.HA_GUEST_DATASOURCE, datasource.OPTS)], datasource.list_opts())

    def test_our_options_in_vitrage_conf(self) -> None:
        self.parse_config(
            ha_guest={"controller_topic": "hg", "controller_exchange": "ha", "controller_call_timeout": "2.5"}
        )
        group = CONF[datasource.HA_GUEST_DATASOURCE]
        self.assertEqual(("hg", "ha", 2.5), (group.controller_topic, group.controller_exchange,
                                             group.controller_call_timeout))

    def test_driver_and_transformer_as_vitrage_builds_them(self) -> None:
        self.assertIn(datasource.HA_GUEST_DATASOURCE, datasource_utils.get_push_drivers_names())
        driver = datasource_utils.get_drivers_by_name([datasource.HA_GUEST_DATASOURCE])[0]
        self.assertIsInstance(driver, HAGuestDriver)
        transformer = TransformerManager().get_transformer(datasource.HA_GUEST_DATASOURCE)
        self.assertIsInstance(transformer, HAGuestTransformer)
        # The datasource name, the transformer's type and the events' entity type are one name.
        self.assertEqual(datasource.HA_GUEST_DATASOURCE, transformer.get_vitrage_type())

    def test_listener_routes_our_event_types_to_our_driver(self) -> None:
        received: list = []
        endpoint = DriversNotificationEndpoint(received.extend).init()
        driver = self.ha_guest_driver()
        for event_type in (EventType.RAISED, EventType.CLEARED):
            self.assertEqual([driver.enrich_event], endpoint._enrich_event_methods[event_type])
        # The listener's own callback, as oslo.messaging calls it.
        endpoint.info({}, "ha_guest.controller.c1", EventType.RAISED, base.fault(self.instance_uuid), {})
        self.assertEqual(1, len(received))
        self.assertEqual(datasource.HA_GUEST_DATASOURCE, received[0]["vitrage_entity_type"])
        self.assertEqual(datasource.HA_GUEST_DATASOURCE, received[0]["vitrage_datasource_name"])

    def test_values_file_loaded(self) -> None:
        mapper = DatasourceInfoMapper()
        self.assertEqual("CRITICAL", mapper.vitrage_operational_value(datasource.HA_GUEST_DATASOURCE, "MISSED"))
        self.assertEqual("SEVERE", mapper.vitrage_operational_value(datasource.HA_GUEST_DATASOURCE, "UNHEALTHY"))

    def test_consistency_never_ages_our_alarms_out(self) -> None:
        # An alarm stays while the controller is unreachable; get_all clears what it no longer lists.
        enforcer = ConsistencyEnforcer(NXGraph("Entity Graph"))
        self.assertNotIn(datasource.HA_GUEST_DATASOURCE, enforcer.datasources_to_mark_deleted)

    def test_eventlet_not_monkey_patched(self) -> None:
        # Vitrage 15 never imports eventlet; oslo.service / futurist may import it but nothing patches.
        if "eventlet" in sys.modules:
            from eventlet import patcher

            for module in ("socket", "thread", "time", "select"):
                self.assertFalse(patcher.is_monkey_patched(module), module)


class TestSampleConfig(base.VitrageTestCase):
    """The oslo.config.opts entry point ha_guest.vitrage: options for vitrage.conf's [ha_guest]."""

    def test_entry_point(self) -> None:
        from importlib import metadata

        (entry_point,) = [ep for ep in metadata.entry_points(group="oslo.config.opts") if ep.name == "ha_guest.vitrage"]
        self.assertIs(datasource.list_opts, entry_point.load())

    def test_generator(self) -> None:
        import os
        import subprocess

        path = os.path.join(self.tmp, "vitrage-ha_guest.conf.sample")
        subprocess.run(
            [sys.executable, "-m", "oslo_config.generator", "--namespace", "ha_guest.vitrage", "--output-file", path],
            check=True,
        )
        with open(path) as f:
            sample = f.read()
        self.assertIn("[ha_guest]", sample)
        for opt in datasource.OPTS:
            self.assertIn("#%s = " % opt.name, sample)


class TestDataFiles(base.VitrageTestCase):
    """The values file and template are found in a source tree and where a wheel installs them."""

    def test_source_tree(self) -> None:
        from ha_guest.vitrage import data

        self.assertTrue(data.values_file().endswith("etc/vitrage/datasources_values/ha_guest.yaml"))
        self.assertTrue(data.template_file().endswith("etc/vitrage/templates/ha_guest_heartbeat.yaml"))

    def test_installed(self) -> None:
        import os
        import shutil
        from unittest import mock

        from ha_guest.vitrage import data

        installed = os.path.join(self.tmp, "etc", "ha_guest", "vitrage")
        shutil.copytree(data.vitrage_etc_dir(), installed)
        with mock.patch.object(data, "_SOURCE_TREE", os.path.join(self.tmp, "nowhere")), \
                mock.patch.object(sys, "prefix", self.tmp):
            self.assertEqual(os.path.join(installed, "templates", data.TEMPLATE_FILE), data.template_file())
        with mock.patch.object(data, "_SOURCE_TREE", self.tmp), mock.patch.object(sys, "prefix", self.tmp + "x"):
            self.assertRaises(FileNotFoundError, data.values_file)
