"""Protocol versions and their negotiation: the host offers a range, the guest picks."""

from __future__ import annotations

from ha_guest.protocol import errors

#: Versions this implementation speaks.
MIN_VERSION = 1
MAX_VERSION = 1

#: Version of the base-layer messages (hello, hello_ack, hello_request, error),
#: whose envelope never changes so that peers of any version understand them.
BASE_VERSION = 1


def negotiate(offer_min: int, offer_max: int, supported_min: int = MIN_VERSION,
              supported_max: int = MAX_VERSION) -> int:
    """Return the highest version in both ranges, or raise unsupported_version."""
    low = max(offer_min, supported_min)
    high = min(offer_max, supported_max)
    if low > high:
        raise errors.ProtocolError(
            errors.UNSUPPORTED_VERSION,
            "offered %d-%d, supported %d-%d" % (offer_min, offer_max, supported_min, supported_max),
        )
    return high


def is_supported(version: int, supported_min: int = MIN_VERSION, supported_max: int = MAX_VERSION) -> bool:
    """Tell whether a frame's version can be decoded."""
    return supported_min <= version <= supported_max
