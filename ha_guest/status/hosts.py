"""``ha-guest-status host list``: every compute agent the controllers heard from, alive or silent."""

from __future__ import annotations

import argparse
import time
from typing import Any

from cliff import lister

from ha_guest.status import formatting
from ha_guest.status.base import StatusCommand


def list_agents(status: Any, host: str | None = None, what: str = 'host list') -> dict[str, Any]:
    """Return the controllers' list_agents answer (controller API 1.4), refused clearly below it."""
    api = status.controller
    status.require(api, '1.4', what, 'controller API', 'controller_version_cap')
    answer: dict[str, Any] = status.call(what, api.list_agents, None, host, version='1.4')
    return answer


class HostList(StatusCommand, lister.Lister):
    """List compute agents: last state report, version, instances by state, alive or silent."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument('--host', metavar='HOST', help='only this compute host')
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        answer = list_agents(self.status(), args.host)
        now = time.time()
        return formatting.HOST_COLUMNS, [formatting.host_row(agent, now) for agent in answer.get('agents', [])]
