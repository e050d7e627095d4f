"""``ha-guest-status fault list``: the controllers' open faults, and with --all the recently cleared ones."""

from __future__ import annotations

import argparse
from typing import Any

from cliff import lister

from ha_guest.status import formatting
from ha_guest.status.base import StatusCommand


class FaultList(StatusCommand, lister.Lister):
    """List open faults of guests and compute agents (--all: also the recently cleared)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument('--all', action='store_true',
                            help='also the recently cleared faults (the last 1000 a controller saw end; '
                                 'needs controller API 1.4)')
        parser.add_argument('--host', metavar='HOST', help='only faults of this compute host')
        parser.add_argument('--instance', metavar='UUID', help='only faults of this instance')
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        status = self.status()
        api = status.controller
        faults: list[dict[str, Any]] = status.call(
            'fault list', api.list_faults, None, args.instance, args.host,
            version='1.2' if args.host else '1.0')
        if args.instance is None:
            if api.can_send_version('1.3'):
                faults += [formatting.host_fault_as_fault(alarm)
                           for alarm in status.call('fault list', api.list_host_faults, None, args.host,
                                                    version='1.3')]
            else:
                self.app.stderr.write('note: silent compute agents not listed ([rpc] controller_version_cap '
                                      '%s is below 1.3)\n' % api.version_cap)
        if args.all:
            status.require(api, '1.4', 'fault list --all', 'controller API', 'controller_version_cap')
            faults += status.call('fault list --all', api.list_cleared_faults, None, args.instance, args.host,
                                  version='1.4')
        return formatting.FAULT_COLUMNS, [formatting.fault_row(f) for f in formatting.sort_faults(faults)]
