"""Options of ha-guest-controller ([controller])."""

from __future__ import annotations

from oslo_config import cfg

from ha_guest.conf import register_group_opts

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
    cfg.FloatOpt(
        'resync_clear_grace_s',
        default=10.0,
        min=0.0,
        help='A compute agent that reports its recoveries and exits itself (its state reports say which agent '
             'it is) gets a fault it no longer shows cleared by its state reports only once the fault has been '
             'missing from them for this long: its recovery report, perhaps handled by another controller, '
             'clears it first, so the sinks hear one "cleared". Older agents: cleared at once.',
    ),
    cfg.StrOpt(
        'announce_journal',
        default='/var/lib/ha_guest/controller-announced.jsonl',
        help='A file of the incidents whose "raised" each sink took, appended as they take it and read at start, '
             'so that a controller killed before its answer reached the compute agent does not, restarted, '
             'tell the sinks again when the agent sends the fault again. Give every controller on a host a file '
             'of its own. Empty: keep nothing (a restart may then tell a sink of an open incident twice; '
             'consumers key on the incident id anyway).',
    ),
    cfg.FloatOpt(
        'announce_journal_retention_s',
        default=86400.0,
        min=60.0,
        help='How long the announce journal remembers an incident, in seconds: longer than a compute agent '
             'may keep retrying a fault report (a broker outage included). The journal also holds at most '
             'twice max_faults incidents, the oldest dropped first.',
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
    cfg.IntOpt(
        'sink_lanes',
        default=4,
        min=1,
        max=32,
        help='Threads of each fault sink that can send concurrently (the notifications and vitrage sinks). '
             'One instance\'s events always take the same thread, so its "raised" comes before its "cleared"; '
             'each notification waits about a millisecond for the broker, so more threads bring a storm of '
             'faults to Vitrage sooner (each takes a connection of the notification transport\'s pool).',
    ),
    cfg.FloatOpt(
        'agent_down_time_s',
        mutable=True,
        default=75.0,
        min=1.0,
        help='Seconds a compute agent may send no state report before the '
             'controllers raise a host fault (event "ha_guest.host.fault.raised", '
             'a Vitrage alarm on the nova.host) for it; cleared when it reports '
             'again. Agents report every [compute] state_report_interval_s (30 s '
             'by default): keep this above two intervals. An agent that reports '
             'more slowly gets two of its intervals plus one peer beat. A '
             'controller gives an agent it has not heard since it started this '
             'long too.',
    ),
    cfg.FloatOpt(
        'peer_beat_interval_s',
        default=5.0,
        min=0.1,
        max=60.0,
        help='Seconds between a controller\'s beats on the peer-sync fanout: the '
             'compute agents it heard from, and (from the controller that '
             'decides) the open agent and registration alarms. A controller '
             'silent for three beats counts as gone; a started controller '
             'listens for two beats before it may decide.',
    ),
    cfg.FloatOpt(
        'registration_timeout_s',
        mutable=True,
        default=300.0,
        min=1.0,
        help='Seconds an instance with the heartbeat feature may run without its '
             'guest registering before it is listed as overdue (and announced, '
             'with alarm_unregistered).',
    ),
    cfg.BoolOpt(
        'alarm_unregistered',
        mutable=True,
        default=False,
        help='Announce once each instance whose guest has not registered within '
             'registration_timeout_s ("ha_guest.instance.unregistered.raised", '
             'cleared when it registers or the instance goes away; a Vitrage '
             'alarm on the instance). Off: such instances are only listed.',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [controller] options on ``conf``."""
    register_group_opts(conf, group, OPTS)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    """Return this module's options by group, for the sample config."""
    return {group: OPTS}
