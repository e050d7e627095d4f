"""The "vitrage" fault sink: the same notifications on Vitrage's topic, for the ha_guest datasource."""

from __future__ import annotations

from ha_guest.conf import sinks as sinks_conf
from ha_guest.sinks.notifications import NotificationSink


class VitrageSink(NotificationSink):
    """Sends ha_guest.heartbeat.fault.raised / .cleared on [sink_vitrage] topics (Vitrage's notification_topics).

    The watchers' host faults and unregistered-instance alarms too: the ha_guest
    datasource turns them into alarms on the nova.host and the nova.instance.
    """

    GROUP = sinks_conf.VITRAGE_GROUP
