"""The flavor extra specs and image properties that turn ha_guest on (pure, no Nova)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

#: Extra-spec namespace; once our validators are loaded nova-api rejects unknown keys in it.
NAMESPACE = "ha_guest"

#: Flavor extra specs (set by operators).
HEARTBEAT = "ha_guest:heartbeat"
SERVER_GROUP_MESSAGING = "ha_guest:server_group_messaging"
RECOVERY = "ha_guest:recovery"

#: Image properties (set by image owners); Nova's own rule maps ``ns:key`` to ``ns_key``.
IMAGE_HEARTBEAT = "ha_guest_heartbeat"
IMAGE_SERVER_GROUP_MESSAGING = "ha_guest_server_group_messaging"

#: Nova copies every image property into system metadata under this prefix.
SYSTEM_METADATA_IMAGE_PREFIX = "image_"

#: Recovery actions an operator can ask for in ``ha_guest:recovery``.
RECOVERY_NONE = "none"
RECOVERY_REBOOT = "reboot"
RECOVERY_STOP = "stop"
RECOVERY_MASAKARI = "masakari"
RECOVERY_ACTIONS = (RECOVERY_NONE, RECOVERY_REBOOT, RECOVERY_STOP, RECOVERY_MASAKARI)

# The same words as oslo_utils.strutils.bool_from_string(strict=True), which is
# what nova-api's bool validator accepts: a value the API let through must parse here.
TRUE_STRINGS = frozenset(("1", "t", "true", "on", "y", "yes"))
FALSE_STRINGS = frozenset(("0", "f", "false", "off", "n", "no"))


class InvalidSpec(ValueError):
    """A flavor extra spec or image property of ours has a value we cannot use."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        self.key = key
        self.value = value
        super().__init__("Invalid value %r for %s: expected %s" % (value, key, expected))


def parse_bool(key: str, value: Any) -> bool:
    """Parse a boolean-like value the way Nova's strict bool validator does."""
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in TRUE_STRINGS:
        return True
    if lowered in FALSE_STRINGS:
        return False
    raise InvalidSpec(key, value, "one of " + ", ".join(sorted(TRUE_STRINGS | FALSE_STRINGS)))


def _flavor_or_image(
    flavor_key: str,
    image_key: str,
    extra_specs: Mapping[str, Any],
    image_properties: Mapping[str, Any],
) -> bool:
    # The flavor belongs to the operator, the image to its owner: a flavor that
    # says anything (true or false) wins, the image only speaks when the flavor
    # is silent. Nova treats hw:watchdog_action / hw_watchdog_action the same way.
    if flavor_key in extra_specs:
        return parse_bool(flavor_key, extra_specs[flavor_key])
    if image_key in image_properties:
        return parse_bool(image_key, image_properties[image_key])
    return False


@dataclasses.dataclass(frozen=True)
class Features:
    """What an instance asked for."""

    heartbeat: bool = False
    server_group_messaging: bool = False

    @property
    def needs_channel(self) -> bool:
        """Both features ride on the one channel."""
        return self.heartbeat or self.server_group_messaging


def features(
    extra_specs: Mapping[str, Any],
    image_properties: Optional[Mapping[str, Any]] = None,
) -> Features:
    """Return the features of an instance from its flavor extra specs and image properties."""
    image_properties = image_properties or {}
    return Features(
        heartbeat=_flavor_or_image(HEARTBEAT, IMAGE_HEARTBEAT, extra_specs, image_properties),
        server_group_messaging=_flavor_or_image(
            SERVER_GROUP_MESSAGING, IMAGE_SERVER_GROUP_MESSAGING, extra_specs, image_properties
        ),
    )


def recovery_action(extra_specs: Mapping[str, Any]) -> str:
    """Return the recovery action of a flavor; only the operator chooses it, never the image."""
    value = extra_specs.get(RECOVERY, RECOVERY_NONE)
    if value not in RECOVERY_ACTIONS:
        raise InvalidSpec(RECOVERY, value, "one of " + ", ".join(RECOVERY_ACTIONS))
    return str(value)


def image_properties_from_system_metadata(system_metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Return our image properties from an instance's system metadata.

    Nova's ImageMeta object drops properties it does not know, but it copies
    every image property into system metadata as ``image_<name>`` at boot and
    rebuild, so that is where a driver finds them.
    """
    found = {}
    for name in (IMAGE_HEARTBEAT, IMAGE_SERVER_GROUP_MESSAGING):
        value = system_metadata.get(SYSTEM_METADATA_IMAGE_PREFIX + name)
        if value is not None:
            found[name] = value
    return found
