"""What a libvirt domain means for its ha_guest channel: the socket and features in its XML, and whether to watch it.

Pure functions over libvirt's numbers and XML, so they are testable without
libvirt-python. The numbers are libvirt's stable ABI (``libvirt-domain.h``);
the libvirt test env checks them against libvirt-python's constants. The
features come from the ``<ha_guest:features>`` element our Nova driver
writes into ``<metadata>`` (names in ha_guest.nova.features_xml); a domain
without it is heartbeat-only (``base.LEGACY_FEATURES``).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import xml.etree.ElementTree as ElementTree
from typing import Dict, Optional, Tuple, Union

from ha_guest.compute.discovery import base
from ha_guest.nova import features_xml

LOG = logging.getLogger(__name__)

# A domain's XML is a few kB (a big Nova guest: tens of kB). Anything far
# larger is not worth parsing on the discovery thread.
MAX_XML_CHARS = 4 * 1024 * 1024


class DomainState(enum.IntEnum):
    """virDomainState."""

    NOSTATE = 0
    RUNNING = 1
    BLOCKED = 2
    PAUSED = 3
    SHUTDOWN = 4
    SHUTOFF = 5
    CRASHED = 6
    PMSUSPENDED = 7


class PausedReason(enum.IntEnum):
    """virDomainPausedReason."""

    UNKNOWN = 0
    USER = 1
    MIGRATION = 2
    SAVE = 3
    DUMP = 4
    IOERROR = 5
    WATCHDOG = 6
    FROM_SNAPSHOT = 7
    SHUTTING_DOWN = 8
    SNAPSHOT = 9
    CRASHED = 10
    STARTING_UP = 11
    POSTCOPY = 12
    POSTCOPY_FAILED = 13
    API_ERROR = 14


class ShutoffReason(enum.IntEnum):
    """virDomainShutoffReason."""

    UNKNOWN = 0
    SHUTDOWN = 1
    DESTROYED = 2
    CRASHED = 3
    MIGRATED = 4
    SAVED = 5
    FAILED = 6
    FROM_SNAPSHOT = 7
    DAEMON = 8


class LifecycleEvent(enum.IntEnum):
    """virDomainEventType (for logs: the driver decides from the domain's state)."""

    DEFINED = 0
    UNDEFINED = 1
    STARTED = 2
    SUSPENDED = 3
    RESUMED = 4
    STOPPED = 5
    SHUTDOWN = 6
    PMSUSPENDED = 7
    CRASHED = 8


class Watch(enum.Enum):
    """What the compute agent should do with a domain's channel."""

    RUNNING = "running"  # watch the heartbeat
    SUSPENDED = "suspended"  # keep the channel, count no misses
    FAILED = "failed"  # ended or stopped abnormally: keep watching, so the silence is a fault
    GONE = "gone"  # ended in an orderly way: stop watching without a fault


@dataclasses.dataclass(frozen=True)
class DomainStatus:
    """A watch decision and why (the reason goes to the listener and the logs)."""

    watch: Watch
    reason: str = ""


# Paused by Nova, an operator or libvirt's own jobs: not the guest's failure.
_PAUSED_SUSPENDED: Dict[int, str] = {
    PausedReason.UNKNOWN: base.PAUSED,
    PausedReason.USER: base.PAUSED,
    PausedReason.MIGRATION: base.MIGRATING,
    PausedReason.POSTCOPY: base.MIGRATING,
    PausedReason.SAVE: base.SUSPENDED,
    PausedReason.DUMP: "dumping",
    PausedReason.FROM_SNAPSHOT: "snapshot",
    PausedReason.SNAPSHOT: "snapshot",
    PausedReason.SHUTTING_DOWN: base.SHUTTING_DOWN,
    PausedReason.STARTING_UP: "starting",
}
# Paused because something broke: the guest can't answer and nobody asked for it, so it is a fault.
_PAUSED_FAILED: Dict[int, str] = {
    PausedReason.IOERROR: "paused on an I/O error",
    PausedReason.WATCHDOG: "paused by its watchdog",
    PausedReason.CRASHED: "crashed (kept paused)",
    PausedReason.POSTCOPY_FAILED: "post-copy migration failed",
    PausedReason.API_ERROR: "paused after a failed libvirt call",
}
_SHUTOFF_FAILED: Dict[int, str] = {
    ShutoffReason.CRASHED: "crashed",
    ShutoffReason.FAILED: "emulator failed",
    ShutoffReason.DAEMON: "killed by libvirtd",
}


def domain_status(state: int, reason: int) -> DomainStatus:
    """Decide from ``virDomainGetState``'s (state, reason) what to do with the channel."""
    if state == DomainState.PAUSED:
        if reason in _PAUSED_FAILED:
            return DomainStatus(Watch.FAILED, _PAUSED_FAILED[reason])
        return DomainStatus(Watch.SUSPENDED, _PAUSED_SUSPENDED.get(reason, base.PAUSED))
    if state == DomainState.SHUTDOWN:
        return DomainStatus(Watch.SUSPENDED, base.SHUTTING_DOWN)
    if state == DomainState.PMSUSPENDED:
        return DomainStatus(Watch.SUSPENDED, base.SUSPENDED)
    if state == DomainState.SHUTOFF:
        if reason in _SHUTOFF_FAILED:
            return DomainStatus(Watch.FAILED, _SHUTOFF_FAILED[reason])
        return DomainStatus(Watch.GONE, "shut off")
    if state == DomainState.CRASHED:
        return DomainStatus(Watch.FAILED, "crashed")
    # RUNNING, BLOCKED (running, waiting on a resource), NOSTATE and anything newer.
    return DomainStatus(Watch.RUNNING)


def event_name(event: int, detail: int) -> str:
    """Readable ``EVENT/detail`` for logs."""
    try:
        return "%s/%d" % (LifecycleEvent(event).name, detail)
    except ValueError:
        return "%d/%d" % (event, detail)


def parse(xml: str) -> ElementTree.Element:
    """Parse a domain XML of bounded size; raise ValueError or SyntaxError (ElementTree.ParseError).

    The XML is libvirt's own output (no DTD, entities escaped), so the
    standard library parser is safe on it; its size is bounded anyway.
    """
    if len(xml) > MAX_XML_CHARS:
        raise ValueError("domain XML of %d characters is larger than %d" % (len(xml), MAX_XML_CHARS))
    return ElementTree.fromstring(xml)


def _root(xml: Union[str, ElementTree.Element]) -> ElementTree.Element:
    return parse(xml) if isinstance(xml, str) else xml


def channel_socket(xml: Union[str, ElementTree.Element], channel_name: str) -> Optional[str]:
    """Return the host socket of the unix virtio channel named ``channel_name``, or None.

    Only a ``mode='bind'`` source counts: QEMU listens there and the compute
    agent connects (that is how Nova and libvirt's auto-generated paths set
    it up).
    """
    root = _root(xml)
    for channel in root.iterfind("./devices/channel"):
        if channel.get("type") != "unix":
            continue
        target = channel.find("target")
        if target is None or target.get("type") != "virtio" or target.get("name") != channel_name:
            continue
        source = channel.find("source")
        if source is None or source.get("mode") != "bind":
            continue
        path = source.get("path")
        if path:
            return path
    return None


def parse_features(xml: Union[str, ElementTree.Element]) -> base.Features:
    """Return the features in the domain's metadata; LEGACY_FEATURES without our element.

    Raises ValueError for an attribute that is neither true nor false. A
    missing attribute takes the legacy default (heartbeat on, SGM off). Of
    several elements (only a hand-made XML has them: libvirt keeps one per
    namespace) the first counts, as libvirt's own virDomainGetMetadata does.
    """
    element = _root(xml).find("./metadata/" + features_xml.QUALIFIED_ELEMENT)
    if element is None:
        return base.LEGACY_FEATURES
    legacy = base.LEGACY_FEATURES
    return base.Features(
        heartbeat=features_xml.parse_bool(
            features_xml.HEARTBEAT, element.get(features_xml.HEARTBEAT), legacy.heartbeat),
        server_group_messaging=features_xml.parse_bool(
            features_xml.SERVER_GROUP_MESSAGING, element.get(features_xml.SERVER_GROUP_MESSAGING),
            legacy.server_group_messaging),
    )


def channel_features(xml: Union[str, ElementTree.Element], domain: str = "") -> base.Features:
    """Return the features in the domain's metadata; never raises.

    A domain without our element, with values we can't read, or with XML that
    does not parse is heartbeat-only (LEGACY_FEATURES): that is what every
    channel meant before the features were written, so monitoring goes on.
    """
    try:
        return parse_features(xml)
    except (ValueError, SyntaxError) as exc:  # ElementTree.ParseError is a SyntaxError
        # ``domain`` is the instance's uuid (the libvirt driver passes it): the line carries it.
        LOG.warning("%s: unusable ha_guest features metadata, taking heartbeat only: %s", domain or "domain", exc,
                    extra={"instance_uuid": domain or None})
        return base.LEGACY_FEATURES


def domain_channel(xml: str, channel_name: str, domain: str = "") -> Tuple[Optional[str], base.Features]:
    """Return our channel's socket (or None) and the features, parsing the XML once.

    Raises ValueError or SyntaxError when the XML itself is unusable; bad
    feature values only give LEGACY_FEATURES (see channel_features).
    """
    root = parse(xml)
    path = channel_socket(root, channel_name)
    if path is None:
        return None, base.LEGACY_FEATURES
    return path, channel_features(root, domain)
