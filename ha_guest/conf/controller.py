"""Options of ha-guest-controller ([controller])."""

from __future__ import annotations

from oslo_config import cfg

GROUP = 'controller'

group = cfg.OptGroup(GROUP, title='Controller options',
                     help='The fault registry and fault sinks of ha-guest-controller.')

OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        'fault_sinks',
        default=['log', 'notifications', 'vitrage'],
        help='Fault sinks to load, by name in the "ha_guest.fault_sinks" entry '
             'point namespace. Every sink gets each fault once when it is raised '
             'and once when it is cleared.',
    ),
    cfg.BoolOpt(
        'resync_on_start',
        default=True,
        help='On start, ask every compute agent for a state report (fanout) and '
             'every other controller for its faults, so that a restarted '
             'controller rebuilds its fault registry.',
    ),
    cfg.IntOpt(
        'max_faults',
        default=100000,
        min=1,
        help='Most active faults the registry holds. Past it a new fault report '
             'fails with FaultRegistryFull and an error is logged; a later state '
             'report of its compute agent adds the fault once there is room.',
    ),
    cfg.IntOpt(
        'sink_queue_size',
        default=10000,
        min=1,
        help='Events queued per fault sink. Each sink runs in its own thread, so '
             'a slow or failing sink delays neither the others nor the RPC '
             'replies; when its queue is full, events for that sink are dropped '
             'and logged as errors.',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [controller] options on ``conf``."""
    conf.register_group(group)
    conf.register_opts(OPTS, group=group)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    """Return this module's options by group, for the sample config."""
    return {group: OPTS}
