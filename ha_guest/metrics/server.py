"""The metrics endpoint: prometheus_client's WSGI app on a server thread of its own (no eventlet, no asyncio).

One thread serves one scrape at a time, and a client that sends nothing is
dropped after ``REQUEST_TIMEOUT_S``: a scraper cannot make the service start
threads or hold one for ever. Only this module and the collectors import
prometheus_client.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any, Dict, Iterable, Optional, Tuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from oslo_config import cfg
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ha_guest.conf import metrics as metrics_conf
from ha_guest.metrics import definitions

LOG = logging.getLogger(__name__)

#: Seconds a scrape's connection may stay silent before it is dropped.
REQUEST_TIMEOUT_S = 10.0


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_S  # the socket timeout of each connection

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Keep scrapes out of the service's log."""


class _Server(WSGIServer):
    address_family = socket.AF_INET


class _Server6(WSGIServer):
    address_family = socket.AF_INET6


def family(metric: definitions.Metric) -> Any:
    """Return an empty prometheus_client family for ``metric`` (labels in definition order)."""
    labels = list(metric.labels)
    if metric.type == definitions.COUNTER:
        return CounterMetricFamily(metric.family, metric.help, labels=labels)
    if metric.type == definitions.GAUGE:
        return GaugeMetricFamily(metric.family, metric.help, labels=labels)
    return HistogramMetricFamily(metric.family, metric.help, labels=labels)


class Families:
    """The families of one scrape, filled by name: unknown names fail loudly (tests catch them)."""

    def __init__(self, metrics: Iterable[definitions.Metric]) -> None:
        self.metrics = definitions.by_name(tuple(metrics))
        self._families: Dict[str, Any] = {}

    def _get(self, name: str) -> Any:
        if name not in self._families:
            self._families[name] = family(self.metrics[name])
        return self._families[name]

    def add(self, name: str, value: float, **labels: str) -> None:
        """Add one sample of a counter or gauge."""
        metric = self.metrics[name]
        self._get(name).add_metric([labels[label] for label in metric.labels], value)

    def histogram(self, name: str, cumulative: Tuple[list, int, float]) -> None:
        """Add a histogram from Buckets.cumulative()."""
        buckets, count, total = cumulative
        pairs = [(repr(bound), value) for bound, value in buckets] + [("+Inf", count)]
        self._get(name).add_metric([], pairs, total)

    def collected(self) -> Iterable[Metric]:
        """The families filled, in definition order."""
        return [self._families[name] for name in self.metrics if name in self._families]


class MetricsServer:
    """Serves one registry on ``address:port`` until stop()."""

    def __init__(self, address: str, port: int, collectors: Iterable[Any]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            self.registry.register(collector)
        server_class = _Server6 if ":" in address else _Server
        self._httpd = make_server(address, port, make_wsgi_app(self.registry), server_class, handler_class=_Handler)
        self.port = self._httpd.server_address[1]  # the one bound, when port 0 was asked for
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="ha-guest-metrics", daemon=True)

    def start(self) -> None:
        """Start serving on a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(REQUEST_TIMEOUT_S)
        self._httpd.server_close()


def serve(conf: cfg.ConfigOpts, collectors: Iterable[Any]) -> Optional[MetricsServer]:
    """Start the endpoint [metrics] asks for; None when listen_port is unset."""
    metrics_conf.register_opts(conf)
    opts = conf[metrics_conf.GROUP]
    if opts.listen_port is None:
        return None
    server = MetricsServer(opts.listen_address, opts.listen_port, collectors)
    server.start()
    LOG.info("metrics served on http://%s:%d/metrics", opts.listen_address, server.port)
    return server
