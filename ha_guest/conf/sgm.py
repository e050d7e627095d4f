"""Options of server group messaging on the controllers ([sgm]): Nova lookups, Nova's notifications, casts."""

from __future__ import annotations

from oslo_config import cfg

from ha_guest.conf import register_group_opts

GROUP = 'sgm'

group = cfg.OptGroup(
    GROUP, title='Server group messaging (controller)',
    help='How ha-guest-controller routes broadcasts between the members of a Nova server group, answers status '
         'requests and turns Nova\'s versioned notifications into peer notifications. Nova is asked with the '
         '[nova_api] credentials; Nova must send versioned notifications ([notifications] notification_format '
         '= versioned or both, [oslo_messaging_notifications] driver = messagingv2) on every nova-compute host '
         'and in the conductors\' configuration.')

OPTS: list[cfg.Opt] = [
    cfg.BoolOpt(
        'enabled',
        default=True,
        help='Route server group messages. False: broadcasts and status requests are refused with nack '
             '"unavailable" and Nova\'s notifications are not consumed.',
    ),
    cfg.ListOpt(
        'notification_topics',
        default=['versioned_notifications'],
        help='Topics of Nova\'s versioned notifications (Nova\'s [notifications] versioned_notifications_topics).',
    ),
    cfg.StrOpt(
        'notification_exchange',
        default='nova',
        help='Exchange Nova sends its notifications to (Nova\'s control_exchange).',
    ),
    cfg.StrOpt(
        'notification_pool',
        default='ha_guest-sgm',
        help='Listener pool of the controllers: every controller consumes in this pool, so each notification '
             'reaches exactly one of them (which passes what it learned on to the others), and consumers of '
             'other pools still get every message. Every controller of one deployment must use the same pool.',
    ),
    cfg.StrOpt(
        'notification_transport_url',
        secret=True,
        help='Broker Nova sends its notifications to. Unset: [oslo_messaging_notifications] transport_url, '
             'which itself defaults to [DEFAULT] transport_url.',
    ),
    cfg.FloatOpt(
        'cache_ttl_s',
        default=600.0,
        min=1.0,
        help='Seconds what the controller learned from Nova (an instance\'s group, a group\'s members, a '
             'member\'s host and state) is used before it is asked again. Nova\'s notifications keep it current '
             'meanwhile; when Nova can\'t be asked, an expired entry is used rather than none.',
    ),
    cfg.FloatOpt(
        'negative_ttl_s',
        default=30.0,
        min=0.0,
        help='Seconds the answer "this instance is in no server group" (or "unknown to Nova") is remembered, '
             'so that a guest without a group costs at most one Nova request per period.',
    ),
    cfg.FloatOpt(
        'nova_timeout_s',
        default=2.0,
        min=0.05,
        help='Longest wait for Nova in routing one broadcast or answering one status request, in seconds; a '
             'lookup that can\'t finish in time gives nack "unavailable" (it goes on in the background and '
             'fills the cache). Each HTTP request is bounded by [nova_api] connect_timeout and timeout as well.',
    ),
    cfg.IntOpt(
        'lookup_workers',
        default=8,
        min=1,
        max=256,
        help='Nova requests the controller makes at the same time (threads). Concurrent lookups of one '
             'instance or group share one request.',
    ),
    cfg.IntOpt(
        'cache_size',
        default=100000,
        min=10,
        help='Most instances (and, separately, groups) the cache holds; the least recently used go first.',
    ),
    cfg.IntOpt(
        'cast_retry',
        default=1,
        min=0,
        help='Reconnection attempts of each cast to a compute agent or a peer controller when the broker is '
             'unreachable, so that a broker outage holds a controller thread only briefly; a cast that still '
             'fails is dropped and counted (messaging is best effort).',
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [sgm] options on ``conf``."""
    register_group_opts(conf, group, OPTS)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    """Return this module's options by group, for the sample config."""
    return {group: OPTS}
