"""Options of the [DEFAULT] group that ha_guest's services share."""

from __future__ import annotations

import socket

from oslo_config import cfg

GROUP = 'DEFAULT'

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        'host',
        default=socket.gethostname(),
        sample_default='<current_hostname>',
        help='Name of this host as the other ha_guest services know it: the '
             'compute agent\'s RPC server name and the "host" of the faults it '
             'reports (must match Nova\'s [DEFAULT] host on compute nodes), and '
             'the controller\'s name in notifications\' publisher_id.',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [DEFAULT] options on ``conf``."""
    conf.register_opts(OPTS)


def list_opts() -> dict[str, list[cfg.Opt]]:
    """Return this module's options by group, for the sample config."""
    return {GROUP: OPTS}
