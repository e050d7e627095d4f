"""Read the Nova settings that server group messaging depends on from nova.conf files (no Nova import).

Only what the upgrade check needs: a small INI reader that keeps every value
of a repeated key (oslo.config's multi-valued options, e.g. the notification
driver), later files winning as in Nova. Files over MAX_BYTES are refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

#: Largest nova.conf read (Nova's own sample is ~250 kB).
MAX_BYTES = 4 * 1024 * 1024
#: Nova 34's defaults of the settings read here.
DEFAULTS = {
    ('notifications', 'notification_format'): ['unversioned'],
    ('notifications', 'versioned_notifications_topics'): ['versioned_notifications'],
    ('DEFAULT', 'control_exchange'): ['nova'],
    ('oslo_messaging_notifications', 'driver'): [],
}


@dataclass
class NovaSettings:
    """The values found (section, key) -> [values of the last file that set it]."""

    files: list[str] = field(default_factory=list)
    values: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> list[str]:
        """Return every value of ``key`` (Nova's default if unset)."""
        return self.values.get((section, key), DEFAULTS.get((section, key), []))

    def first(self, section: str, key: str) -> str:
        """Return the value of a single-valued option ('' if unset and no default)."""
        found = self.get(section, key)
        return found[-1] if found else ''

    def listed(self, section: str, key: str) -> list[str]:
        """Return a list option (comma separated) as its items."""
        return [item.strip() for value in self.get(section, key) for item in value.split(',') if item.strip()]


def read(paths: list[str]) -> NovaSettings:
    """Read ``paths`` in order; raise OSError or ValueError with the file's name."""
    settings = NovaSettings()
    for path in paths:
        if os.path.getsize(path) > MAX_BYTES:
            raise ValueError('%s: larger than %d bytes' % (path, MAX_BYTES))
        with open(path, encoding='utf-8', errors='replace') as handle:
            found = parse(handle.read())
        for key, values in found.items():
            settings.values[key] = values
        settings.files.append(path)
    return settings


def parse(text: str) -> dict[tuple[str, str], list[str]]:
    """Return {(section, key): [values]} of one INI text (repeated keys keep every value)."""
    section = 'DEFAULT'
    found: dict[tuple[str, str], list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in '#;':
            continue
        if line.startswith('[') and line.endswith(']'):
            section = line[1:-1].strip()
            continue
        if '=' not in line:
            continue
        key, value = (part.strip() for part in line.split('=', 1))
        found.setdefault((section, key), []).append(value)
    return found
