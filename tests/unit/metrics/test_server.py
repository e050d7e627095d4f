"""The metrics endpoint: off unless [metrics] listen_port is set; serves GET /metrics over real HTTP."""

from __future__ import annotations

import socket
import urllib.request

import testtools
from oslo_config import cfg

from ha_guest.conf import metrics as metrics_conf
from ha_guest.metrics import definitions, server
from tests.unit.metrics.scrape import parse, value

NAME = "ha_guest_compute_channels_connected"


class Fixed:
    """A collector of one gauge."""

    def __init__(self) -> None:
        self.value = 3.0

    def collect(self) -> list:
        out = server.Families(definitions.COMPUTE)
        out.add(NAME, self.value)
        return list(out.collected())


class TestServe(testtools.TestCase):

    def conf(self, **overrides: object) -> cfg.ConfigOpts:
        conf = cfg.ConfigOpts()
        metrics_conf.register_opts(conf)
        conf([])
        for name, given in overrides.items():
            conf.set_override(name, given, metrics_conf.GROUP)
        return conf

    def test_off_by_default(self) -> None:
        conf = self.conf()
        self.assertIsNone(conf.metrics.listen_port)
        self.assertEqual("127.0.0.1", conf.metrics.listen_address)
        self.assertIsNone(server.serve(conf, [Fixed()]))

    def test_serves_the_collectors_over_http(self) -> None:
        collector = Fixed()
        endpoint = server.serve(self.conf(listen_port=0), [collector])
        assert endpoint is not None
        self.addCleanup(endpoint.stop)
        url = "http://127.0.0.1:%d/metrics" % endpoint.port
        with urllib.request.urlopen(url, timeout=5) as response:
            self.assertEqual(200, response.status)
            self.assertIn("text/plain", response.headers["Content-Type"])
            self.assertEqual(3.0, value(parse(response.read().decode()), NAME))
        collector.value = 5.0  # read at each scrape
        with urllib.request.urlopen(url, timeout=5) as response:
            self.assertEqual(5.0, value(parse(response.read().decode()), NAME))

    def test_stop_closes_the_port(self) -> None:
        endpoint = server.serve(self.conf(listen_port=0), [Fixed()])
        assert endpoint is not None
        port = endpoint.port
        endpoint.stop()
        with socket.socket() as probe:
            self.assertNotEqual(0, probe.connect_ex(("127.0.0.1", port)))

    def test_unknown_metric_name_fails_loudly(self) -> None:
        self.assertRaises(KeyError, server.Families(definitions.COMPUTE).add, "ha_guest_compute_nope", 1)
