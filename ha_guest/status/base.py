"""What every ha-guest-status command shares: the run's Status object and clean failures."""

from __future__ import annotations

import argparse
from typing import Any

from ha_guest.status.context import Status
from ha_guest.status.errors import StatusError


class StatusCommand:
    """Mixin before a cliff command class: ``self.status()``; a StatusError ends in one line and its exit code."""

    app: Any

    def status(self) -> Status:
        """Return the Status of this run (config read, clients built on first use)."""
        return self.app.status()

    def run(self, parsed_args: argparse.Namespace) -> int:
        try:
            return int(super().run(parsed_args))  # type: ignore[misc]  # cliff.command.Command, after this mixin
        except StatusError as exc:
            self.app.stderr.write('ERROR: %s\n' % exc)
            return exc.exit_code
