"""Options of the notification-based fault sinks ([sink_notifications], [sink_vitrage])."""

from __future__ import annotations

from oslo_config import cfg

from ha_guest.conf import register_group_opts

NOTIFICATIONS_GROUP = 'sink_notifications'
VITRAGE_GROUP = 'sink_vitrage'

notifications_group = cfg.OptGroup(
    NOTIFICATIONS_GROUP, title='The "notifications" fault sink',
    help='Info notifications "ha_guest.heartbeat.fault.raised" and '
         '"ha_guest.heartbeat.fault.cleared" for any consumer.')
vitrage_group = cfg.OptGroup(
    VITRAGE_GROUP, title='The "vitrage" fault sink',
    help='The same notifications, on the topics Vitrage listens on ([datasources] '
         'notification_topics in vitrage.conf), for the ha_guest Vitrage datasource.')


def _opts(topic: str) -> list[cfg.Opt]:
    return [
        cfg.ListOpt(
            'topics',
            default=[topic],
            help='Notification topics to send to (oslo.messaging driver '
                 '"messagingv2", priority info).',
        ),
        cfg.FloatOpt(
            'send_deadline_s',
            default=60.0,
            min=0.0,
            max=3600.0,
            help='How long a notification the broker refused (a basic.nack of a confirmed publish, e.g. while a '
                 'quorum queue\'s leader node hangs) is tried again, in seconds, before it is logged as lost. '
                 'oslo.messaging\'s Notifier would drop it at once. Meanwhile the sink\'s later events of that '
                 'instance wait (a raise stays before its clear); connection losses are retried by the transport '
                 'itself ([oslo_messaging_notifications] retry).',
        ),
        cfg.StrOpt(
            'transport_url',
            secret=True,
            help='Broker to send these notifications to. Unset: '
                 '[oslo_messaging_notifications] transport_url, which itself '
                 'defaults to [DEFAULT] transport_url.',
        ),
    ]


NOTIFICATIONS_OPTS = _opts('ha_guest_notifications')
VITRAGE_OPTS = _opts('vitrage_notifications')

#: The groups of this module; their names are the groups' names.
GROUPS = (NOTIFICATIONS_GROUP, VITRAGE_GROUP)


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register both sinks' options on ``conf``."""
    for group, opts in list_opts().items():
        register_group_opts(conf, group, opts)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    """Return this module's options by group, for the sample config."""
    return {notifications_group: NOTIFICATIONS_OPTS, vitrage_group: VITRAGE_OPTS}
