"""``ha-guest-status instance list`` and ``instance show``: what compute agents know of their guests.

The compute agent of the host answers (ComputeAPI 1.2 instance_stats, one call
per host); the controllers add the faults. Without --host, the hosts are the
alive ones of the controllers' list_agents, asked one after the other.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from cliff import lister, show

from ha_guest.status import formatting
from ha_guest.status.base import StatusCommand
from ha_guest.status.errors import NotFound, StatusError
from ha_guest.status.hosts import list_agents


def _alive_hosts(status: Any, what: str) -> list[str]:
    answer = list_agents(status, None, what)
    return [agent['host'] for agent in answer.get('agents', []) if agent.get('status') == 'alive']


def _stats(status: Any, host: str, what: str, instance_uuid: str | None = None) -> dict[str, Any]:
    api = status.compute
    status.require(api, '1.2', what, 'compute API', 'compute_version_cap')
    answer: dict[str, Any] = status.call(what, api.instance_stats, None, host, instance_uuid, version='1.2',
                                         who='the compute agent of host %s' % host)
    return answer


class InstanceList(StatusCommand, lister.Lister):
    """List the instances compute agents watch: state, interval, misses, last answer and its latency."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument('--host', metavar='HOST',
                            help='the compute host to ask (default: every alive host, one call each)')
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        status = self.status()
        hosts = [args.host] if args.host else _alive_hosts(status, 'instance list')
        rows = []
        for host in hosts:
            answer = _stats(status, host, 'instance list')
            if answer.get('truncated'):
                self.app.stderr.write('note: host %s listed only %d of its %s instances\n' % (
                    host, len(answer['instances']), answer.get('agent', {}).get('instances')))
            rows += [formatting.instance_row(host, item) for item in answer.get('instances', [])]
        return formatting.INSTANCE_COLUMNS, rows


class InstanceShow(StatusCommand, show.ShowOne):
    """Show one instance: heartbeat state and counters, guest agent, faults open and recently cleared."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument('instance', metavar='UUID', help='the instance')
        parser.add_argument('--host', metavar='HOST',
                            help='its compute host (default: ask every alive host until one watches it)')
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        try:
            instance = str(uuid.UUID(args.instance))
        except ValueError:
            raise StatusError('%r is not an instance UUID' % args.instance) from None
        status = self.status()
        hosts = [args.host] if args.host else _alive_hosts(status, 'instance show')
        for host in hosts:
            answer = _stats(status, host, 'instance show', instance)
            if answer.get('instances'):
                break
        else:
            raise NotFound('instance %s is watched by no compute agent of %s' % (
                instance, 'host %s' % args.host if args.host else 'the %d alive hosts' % len(hosts)))
        api = status.controller
        open_faults = status.call('instance show', api.list_faults, None, instance)
        cleared = (status.call('instance show', api.list_cleared_faults, None, instance, version='1.4')
                   if api.can_send_version('1.4') else [])
        return formatting.SHOW_FIELDS, formatting.show_values(host, answer.get('agent', {}), answer['instances'][0],
                                                              open_faults, cleared)
