"""Option fragments shared with the devstack plugin: etc/nova/ha_guest-*.conf, etc/ha_guest/compute-libvirt.conf.

One place says which Nova and ha_guest options a deployment with ha_guest needs; the cloud's config
writer merges these files into what it writes, and devstack can iniset the same lines.
"""

from __future__ import annotations

import configparser
import os
import sys

Sections = dict[str, dict[str, str]]

#: Where the fragments live: a checkout's etc/, or where the wheel's data files go (<prefix>/etc/ha_guest).
_CANDIDATES = (
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))))), 'etc'),
    os.path.join(os.getcwd(), 'etc'),
    os.path.join(sys.prefix, 'etc', 'ha_guest'),
)
ETC = next((c for c in _CANDIDATES if os.path.isfile(os.path.join(c, 'nova', 'ha_guest-compute.conf'))),
           _CANDIDATES[-1])
NOVA_NOTIFICATIONS = os.path.join('nova', 'ha_guest-notifications.conf')
NOVA_COMPUTE = os.path.join('nova', 'ha_guest-compute.conf')
HA_GUEST_COMPUTE = os.path.join('ha_guest', 'compute-libvirt.conf')


def fragment(name: str, etc: str = ETC) -> Sections:
    """The sections and options of one fragment (``DEFAULT`` included), values as written."""
    parser = configparser.ConfigParser(interpolation=None, default_section='__none__')
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # option names keep their case
    path = os.path.join(etc, name)
    with open(path, encoding='utf-8') as f:
        parser.read_file(f)
    return {section: dict(parser.items(section)) for section in parser.sections()}


def merged(*parts: Sections) -> Sections:
    """Sections of several parts, later options winning."""
    out: Sections = {}
    for part in parts:
        for section, options in part.items():
            out.setdefault(section, {}).update(options)
    return out


def write_ini(path: str, sections: Sections) -> None:
    """Write ``sections`` as an ini file (DEFAULT first)."""
    lines: list[str] = []
    for section in sorted(sections, key=lambda s: (s != 'DEFAULT', s)):
        lines.append('[%s]' % section)
        lines.extend('%s = %s' % (key, value) for key, value in sections[section].items())
        lines.append('')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))
