"""Options of ha_guest's RPC APIs ([rpc])."""

from __future__ import annotations

from oslo_config import cfg

from ha_guest.conf import register_group_opts

GROUP = 'rpc'

group = cfg.OptGroup(GROUP, title='RPC options',
                     help='Topics, timeouts and version caps of the ha_guest RPC APIs. The '
                          'broker is oslo.messaging\'s [DEFAULT] transport_url.')

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        'controller_topic',
        default='ha_guest_controller',
        help='Topic the controllers listen on for fault reports and fault '
             'listings. Every controller of one deployment uses the same topic.',
    ),
    cfg.StrOpt(
        'controller_sync_topic',
        default='ha_guest_controller_sync',
        help='Fanout topic on which the controllers keep each other\'s fault '
             'registries in step.',
    ),
    cfg.StrOpt(
        'compute_topic',
        default='ha_guest_compute',
        help='Topic the compute agents listen on (server name: [DEFAULT] host).',
    ),
    cfg.IntOpt(
        'call_timeout_s',
        default=10,
        min=1,
        help='Seconds an RPC call waits for its reply before it fails with a '
             'timeout.',
    ),
    cfg.FloatOpt(
        'report_timeout_s',
        default=2.0,
        min=0.1,
        help='Seconds a compute agent waits for a controller to acknowledge a '
             'batch of fault, recovery and exit reports. Past it (plus half a '
             'second) the agent gives up on the call even if oslo.messaging has '
             'not (a hung broker node can block a call for minutes), drops that '
             'connection and sends the reports again on a new one: a controller '
             'may see a report twice, which it answers as a duplicate.',
    ),
    cfg.IntOpt(
        'report_batch_size',
        default=500,
        min=1,
        max=1000,
        help='Most fault, recovery and exit reports a compute agent sends in one '
             'report_batch call (controller API 1.2); more pending reports go in '
             'the next calls, in order.',
    ),
    cfg.FloatOpt(
        'report_retry_max_s',
        default=0.5,
        min=0.01,
        help='Longest pause of a compute agent between two attempts at a report '
             'the controllers did not acknowledge (the pause starts at 50 ms and '
             'doubles). Reports are retried until acknowledged.',
    ),
    cfg.StrOpt(
        'controller_version_cap',
        help='Newest controller RPC API version to send, e.g. "1.0"; set it '
             'while controllers older than the compute agents still run (rolling '
             'upgrade). Below "1.2" a compute agent sends its fault, recovery and '
             'exit reports one call each instead of in batches. Unset: the newest '
             'this code knows.',
    ),
    cfg.StrOpt(
        'controller_sync_version_cap',
        help='Newest peer-sync API version a controller sends to its peers, '
             'e.g. "1.1"; set it while older controllers still run (rolling '
             'upgrade). Below 1.2 the agent watch (silent compute agents, '
             'unregistered guests) is off. Unset: the newest this code knows.',
    ),
    cfg.StrOpt(
        'compute_version_cap',
        help='Newest compute RPC API version to send, e.g. "1.0"; set it while '
             'compute agents older than the controllers still run. Unset: the '
             'newest this code knows.',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [rpc] options on ``conf``."""
    register_group_opts(conf, group, OPTS)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    """Return this module's options by group, for the sample config."""
    return {group: OPTS}
