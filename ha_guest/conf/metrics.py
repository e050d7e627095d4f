"""Options of the [metrics] group: the Prometheus endpoint of ha-guest-compute and ha-guest-controller."""

from __future__ import annotations

from oslo_config import cfg

from ha_guest.conf import register_group_opts

GROUP = 'metrics'

metrics_group = cfg.OptGroup(
    GROUP, title='Prometheus metrics',
    help='An HTTP endpoint serving this service\'s metrics in the Prometheus text format '
         '(doc/source/metrics.rst lists them). Off unless listen_port is set.')

OPTS: list[cfg.Opt] = [
    cfg.HostAddressOpt(
        'listen_address',
        default='127.0.0.1',
        help='Address the metrics endpoint listens on. The metrics carry no secrets but do '
             'name hosts: expose them beyond the host only to the Prometheus server (firewall).',
    ),
    cfg.PortOpt(
        'listen_port',
        help='TCP port of the metrics endpoint (GET /metrics). Unset: no endpoint, no metrics '
             'kept beyond the service\'s own counters. Give the compute agent and the controller '
             'different ports when both run on one host.',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [metrics] options on ``conf``."""
    register_group_opts(conf, metrics_group, OPTS)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    """Return this module's options by group, for the sample config."""
    return {metrics_group: OPTS}
