"""``ha-guest-status upgrade check``: oslo.upgradecheck's checks as a cliff listing; exit 0, 1 (warning), 2."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from cliff import columns, lister
from oslo_upgradecheck.upgradecheck import UPGRADE_CHECK_MSG_MAP, Code

from ha_guest.status.base import StatusCommand
from ha_guest.status.checks import DEFAULT_NOVA_CONFIG, UpgradeChecks

COLUMNS = ('Check', 'Result', 'Details')
#: Width the details are wrapped to in tables (oslo.upgradecheck's own table wraps at 60).
WRAP = 72


class Details(columns.FormattableColumn):
    """A check's details: wrapped in tables, whole in every other format."""

    def human_readable(self) -> str:
        return '\n'.join(textwrap.wrap(self._value or '', WRAP)) or '-'

    def machine_readable(self) -> Any:
        return self._value


class UpgradeCheck(StatusCommand, lister.Lister):
    """Check this host's config and the running services before an upgrade (exit 1: warning, 2: failure)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument('--nova-config', metavar='PATH', action='append', default=[],
                            help='Nova config file(s) of a nova-compute host or conductor, read in order '
                                 '(default: %s if present)' % DEFAULT_NOVA_CONFIG)
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        results = UpgradeChecks(self.status(), args.nova_config or None).run()
        self._code = max((result.code for _, result in results), default=Code.SUCCESS)
        return COLUMNS, [(name, str(UPGRADE_CHECK_MSG_MAP[result.code]), Details(result.details))
                         for name, result in results]

    def run(self, parsed_args: argparse.Namespace) -> int:
        self._code = Code.SUCCESS
        status = super().run(parsed_args)
        return status or int(self._code)
