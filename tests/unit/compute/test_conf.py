"""The [compute] options."""

from __future__ import annotations

import testtools
from oslo_config import cfg

from ha_guest.conf import compute
from ha_guest.conf import opts as all_opts


class TestComputeOptions(testtools.TestCase):

    def test_every_option_has_help_and_numbers_have_bounds(self) -> None:
        for opt in compute.OPTS:
            self.assertTrue(opt.help and len(opt.help) > 20, opt.name)
            if isinstance(opt, (cfg.IntOpt, cfg.FloatOpt)):
                self.assertIsNotNone(opt.type.min, opt.name)
                self.assertIsNotNone(opt.type.max, opt.name)

    def test_contract_defaults(self) -> None:
        conf = cfg.ConfigOpts()
        compute.register_opts(conf)
        conf([])
        expected = {"discovery_driver": "libvirt", "channel_name": "org.openstack.ha_guest.0",
                    "directory_path": "/var/lib/ha_guest/channels", "libvirt_uri": "qemu:///system",
                    "tick_ms": 10, "miss_threshold": 1, "min_interval_ms": 100, "max_interval_ms": 60000,
                    "state_report_interval_s": 30, "reconnect_min_s": 0.1, "reconnect_max_s": 2.0,
                    "hello_retry_s": 1.0, "report_queue_size": 10000,
                    "state_file": "/var/lib/ha_guest/compute-state.json", "guest_frame_rate": 50.0,
                    "guest_frame_burst": 100}
        self.assertEqual(expected, {name: conf.compute[name] for name in expected})

    def test_out_of_range_is_refused(self) -> None:
        conf = cfg.ConfigOpts()
        compute.register_opts(conf)
        conf([])
        self.assertRaises(ValueError, conf.set_override, "miss_threshold", 11, "compute")
        self.assertRaises(ValueError, conf.set_override, "min_interval_ms", 50, "compute")

    def test_listed_for_the_sample_config(self) -> None:
        self.assertEqual([("compute", compute.OPTS)], compute.list_opts())
        groups = {getattr(group, "name", group): opts for group, opts in all_opts.list_opts()}
        self.assertTrue(set(compute.OPTS) <= set(groups["compute"]))
