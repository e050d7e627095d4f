"""Decide whether an instance gets the ha_guest channel and describe it (pure, no Nova)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from ha_guest.nova import specs
from ha_guest.protocol.constants import CHANNEL_NAME, host_socket_path

#: sun_path holds 108 bytes with the terminating NUL; QEMU refuses longer paths.
MAX_SOCKET_PATH_BYTES = 107


class InvalidInstanceName(ValueError):
    """The instance (libvirt domain) name cannot form a usable socket path."""


@dataclasses.dataclass(frozen=True)
class ChannelSpec:
    """The virtio-serial channel as libvirt needs it: ``<channel type="unix">``."""

    target_name: str
    source_path: str
    type: str = "unix"


def socket_path(instance_name: str) -> str:
    """Return the host socket path for a libvirt domain name, or raise InvalidInstanceName."""
    # The name ends up in a file name under libvirt's folder: no path tricks.
    if not instance_name or "/" in instance_name or "\0" in instance_name or instance_name in (".", ".."):
        raise InvalidInstanceName("Instance name %r cannot be used in a socket path" % instance_name)
    path = host_socket_path(instance_name)
    if len(path.encode("utf-8")) > MAX_SOCKET_PATH_BYTES:
        raise InvalidInstanceName(
            "Socket path %r is longer than %d bytes; shorten [DEFAULT] instance_name_template"
            % (path, MAX_SOCKET_PATH_BYTES)
        )
    return path


def channel_spec(
    instance_name: str,
    extra_specs: Mapping[str, Any],
    image_properties: Optional[Mapping[str, Any]] = None,
) -> Optional[ChannelSpec]:
    """Return the channel an instance needs, or None when it asked for no ha_guest feature.

    Raises specs.InvalidSpec for a value we cannot parse and InvalidInstanceName
    for a name that makes no socket path.
    """
    if not specs.features(extra_specs, image_properties).needs_channel:
        return None
    return ChannelSpec(target_name=CHANNEL_NAME, source_path=socket_path(instance_name))
