"""Loading the discovery driver, and the channel settings that depend on it."""

from __future__ import annotations

import dataclasses
from typing import Any

from oslo_config import cfg
from stevedore import driver as stevedore_driver

from ha_guest.compute.channel_writer import ChannelSettings
from ha_guest.compute.discovery.base import DiscoveryDriver

DISCOVERY_NAMESPACE = "ha_guest.compute.discovery"
#: Added to the discovery driver's event latency to make the channel-loss grace.
CHANNEL_LOSS_MARGIN_S = 0.1


def load_discovery(conf: cfg.ConfigOpts, listener: Any) -> DiscoveryDriver:
    """Load the ``[compute] discovery_driver`` driver through stevedore."""
    manager: stevedore_driver.DriverManager[DiscoveryDriver] = stevedore_driver.DriverManager(
        DISCOVERY_NAMESPACE, conf.compute.discovery_driver, invoke_on_load=True, invoke_args=(conf, listener))
    loaded = manager.driver
    if not isinstance(loaded, DiscoveryDriver):
        raise TypeError("discovery driver %r is not a DiscoveryDriver" % conf.compute.discovery_driver)
    return loaded


def channel_settings(opts: Any) -> ChannelSettings:
    """The channel settings from the [compute] options (the channel-loss grace as configured, if it is)."""
    return ChannelSettings(
        miss_threshold=opts.miss_threshold, hello_retry_s=opts.hello_retry_s,
        reconnect_min_s=opts.reconnect_min_s, reconnect_max_s=max(opts.reconnect_min_s, opts.reconnect_max_s),
        channel_loss_grace_s=opts.channel_loss_grace_s if opts.channel_loss_grace_s is not None
        else ChannelSettings.channel_loss_grace_s,
        guest_frame_rate=opts.guest_frame_rate, guest_frame_burst=opts.guest_frame_burst,
        guest_byte_rate=opts.guest_byte_rate, guest_byte_burst=opts.guest_byte_burst,
        guest_pause_s=opts.guest_pause_s, write_buffer_limit=opts.write_buffer_limit)


def with_discovery_grace(settings: ChannelSettings, opts: Any, discovery: DiscoveryDriver) -> ChannelSettings:
    """``settings`` with the channel-loss grace tied to the driver's event latency, unless it was set.

    After a socket drops, misses wait for this grace because discovery must
    first get the chance to say the domain stopped: as long as the driver
    may take to tell (a libvirt event, or the next poll of a folder), plus a
    margin for the loop to handle it.
    """
    if opts.channel_loss_grace_s is not None:
        return settings
    return dataclasses.replace(settings, channel_loss_grace_s=discovery.event_latency_s + CHANNEL_LOSS_MARGIN_S)
