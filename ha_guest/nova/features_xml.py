"""The ha_guest element in a domain's ``<metadata>``: what its flavor or image enabled (pure, no Nova).

Our Nova driver writes it and the compute agent's libvirt discovery reads
it, so its names live here once:

    <metadata>
      <ha_guest:features xmlns:ha_guest="http://openstack.org/xmlns/libvirt/ha_guest/1.0"
                         heartbeat="true" server_group_messaging="false"/>
    </metadata>

Standard library only: the compute agent imports it without Nova.
"""

from __future__ import annotations

from typing import Dict, Optional

#: libvirt keys custom metadata by namespace URI; a new URI would be a new format.
NAMESPACE_URI = "http://openstack.org/xmlns/libvirt/ha_guest/1.0"
NAMESPACE_PREFIX = "ha_guest"
ELEMENT = "features"
#: The element's name as ElementTree and lxml spell a namespaced tag.
QUALIFIED_ELEMENT = "{%s}%s" % (NAMESPACE_URI, ELEMENT)

HEARTBEAT = "heartbeat"
SERVER_GROUP_MESSAGING = "server_group_messaging"

TRUE = "true"
FALSE = "false"
# xsd:boolean's words: a hand-written or tool-edited element may use them too.
_VALUES = {TRUE: True, "1": True, FALSE: False, "0": False}


def attributes(heartbeat: bool, server_group_messaging: bool) -> Dict[str, str]:
    """Return the element's attributes for these features."""
    return {
        HEARTBEAT: TRUE if heartbeat else FALSE,
        SERVER_GROUP_MESSAGING: TRUE if server_group_messaging else FALSE,
    }


def parse_bool(name: str, value: Optional[str], default: bool) -> bool:
    """Return one attribute's value (``default`` when absent); raise ValueError for anything else."""
    if value is None:
        return default
    try:
        return _VALUES[value.strip()]
    except KeyError:
        raise ValueError("%s=%r is not true or false" % (name, value)) from None
