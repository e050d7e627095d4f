"""Parts of the SGM benchmark: who is where (Layout), the guest helper processes, the figures and the table."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable
from typing import Any

from ha_guest.testing.bench_procs import HelperProcess
from ha_guest.testing.bench_report import percentile, rounded, safe_url


@dataclasses.dataclass(frozen=True)
class Guest:
    """One instance: its UUID, its host, its group."""

    uuid: str
    host: str
    host_index: int
    group_index: int


@dataclasses.dataclass(frozen=True)
class Group:
    """One server group."""

    uuid: str
    members: tuple[str, ...]


class Layout:
    """Groups of ``size`` members spread evenly over ``hosts`` hosts (bench-compute-1..N), one folder each."""

    def __init__(self, groups: int, hosts: int, size: int, tmp: str, make_server: Callable[[str], str],
                 make_group: Callable[[list[str]], str]) -> None:
        """``make_server(host)`` and ``make_group(member uuids)`` create them in Nova and return their UUIDs."""
        self.tmp = tmp
        self.hosts = ['bench-compute-%d' % (i + 1) for i in range(hosts)]
        self.guests: list[Guest] = []
        self.groups: list[Group] = []
        for g in range(groups):
            members = []
            for m in range(size):
                index = m % hosts
                guest = Guest(make_server(self.hosts[index]), self.hosts[index], index, g)
                self.guests.append(guest)
                members.append(guest.uuid)
            self.groups.append(Group(make_group(members), tuple(members)))
        self._by_uuid = {guest.uuid: guest for guest in self.guests}

    def folder(self, host: str) -> str:
        """The discovery folder of one host."""
        return os.path.join(self.tmp, host)

    def on_host(self, host: str) -> list[Guest]:
        return [guest for guest in self.guests if guest.host == host]

    def group_of(self, guest: Guest) -> Group:
        return self.groups[guest.group_index]

    def peers_by_host(self, guest: Guest) -> dict[str, int]:
        """How many of the guest's peers (itself excluded) each host has."""
        counts = dict.fromkeys(self.hosts, 0)
        for member in self.group_of(guest).members:
            if member != guest.uuid:
                counts[self._by_uuid[member].host] += 1
        return counts


class SgmHelper(HelperProcess):
    """One ha_guest.testing.bench_sgm_guests process (the guests of one host)."""

    def __init__(self, index: int, host: str, spec_path: str, log_path: str) -> None:
        super().__init__(index, ['-m', 'ha_guest.testing.bench_sgm_guests', '--spec', spec_path], log_path)
        self.host = host

    def read_ready(self) -> int:
        """Wait for the helper to bind its sockets; return how many."""
        return int(self.read()['ready'])


def load_figures(reports: list[dict[str, Any]], start_ns: int, seconds: float, peers: int) -> dict[str, Any]:
    """Figures of the sustained load from the helpers' reports (what each sent, what each received)."""
    receipts: dict[tuple[str, int], list[int]] = {}
    for report in reports:
        for sender, seq, count, last in report['receipts']:
            item = receipts.setdefault((sender, seq), [0, 0])
            item[0] += count
            item[1] = max(item[1], last)
    sent = [(sender, seq, t) for report in reports for sender, items in report['sent'].items()
            for seq, t in items if t >= start_ns]
    complete, latencies, over = 0, [], 0
    per_second: dict[int, int] = {}
    for sender, seq, t in sent:
        count, last = receipts.get((sender, seq), (0, 0))
        if count > peers:
            over += 1
        if count >= peers:
            complete += 1
            latencies.append((last - t) / 1e6)
            second = int((t - start_ns) // 1_000_000_000)
            per_second[second] = per_second.get(second, 0) + 1
    deliveries = sum(min(receipts.get((s, q), (0, 0))[0], peers) for s, q, _ in sent)
    return {
        'load_s': seconds, 'broadcasts_offered': len(sent), 'offered_per_s': round(len(sent) / seconds, 1),
        'broadcasts_delivered': complete, 'broadcasts_per_s': round(complete / seconds, 1),
        'broadcasts_lost': len(sent) - complete, 'over_delivered': over,
        'deliveries_per_s': round(deliveries / seconds, 1),
        'load_broadcast_p50_ms': rounded(percentile(latencies, 0.5)),
        'load_broadcast_p99_ms': rounded(percentile(latencies, 0.99)),
        'load_broadcast_max_ms': rounded(max(latencies, default=None)),
        'delivered_by_second': [per_second.get(s, 0) for s in range(int(seconds))],
    }


_DROP_LINE = re.compile(r'broadcast dropped \((\w+)\).*?(?:\((\d+) similar lines suppressed\))?$')


def logged_drops(paths: list[str]) -> dict[str, int]:
    """Broadcasts the compute agents logged as dropped, by reason: a lower bound (their logs are rate-limited)."""
    drops: dict[str, int] = {}
    for path in paths:
        try:
            with open(path, encoding='utf-8', errors='replace') as handle:
                for line in handle:
                    match = _DROP_LINE.search(line.rstrip())
                    if match is not None:
                        drops[match.group(1)] = drops.get(match.group(1), 0) + 1 + int(match.group(2) or 0)
        except OSError:
            continue
    return drops


def cpu_ms_per_broadcast(percent: dict[str, float], per_s: float) -> dict[str, float]:
    """CPU milliseconds each process spent per broadcast offered, from its % of a core at ``per_s`` broadcasts/s."""
    return {name: round(10.0 * value / per_s, 2) for name, value in percent.items()} if per_s else {}


def print_sgm_table(result: dict[str, Any], url: str) -> None:
    """Print the figures as a small table."""
    def ms(name: str) -> str:
        value = result.get(name)
        return '-' if value is None else '%.1f ms' % value

    cpu = result.get('load_cpu_percent') or {}
    rows = [
        ('layout', '%d groups x %d members on %d hosts, %d-byte payloads, heartbeat %s' % (
            result['groups'], result['group_size'], result['hosts'], result['payload_bytes'], result['heartbeat'])),
        ('status requests', '%s of %s right' % (result.get('status_ok'), result.get('guests'))),
        ('broadcast, light load', 'p50 %s, p99 %s, max %s (%s samples, %s incomplete)' % (
            ms('broadcast_p50_ms'), ms('broadcast_p99_ms'), ms('broadcast_max_ms'), result.get('broadcast_samples'),
            result.get('broadcast_incomplete'))),
        ('sustained load', '%s/s offered, %s/s delivered to every peer, %s lost, over %s s' % (
            result.get('offered_per_s'), result.get('broadcasts_per_s'), result.get('broadcasts_lost'),
            result.get('load_s'))),
        ('  latency under load', 'p50 %s, p99 %s, max %s' % (
            ms('load_broadcast_p50_ms'), ms('load_broadcast_p99_ms'), ms('load_broadcast_max_ms'))),
        ('  CPU under load, % of a core', ', '.join('%s %s' % (k, v) for k, v in sorted(cpu.items()))),
        ('notification', 'p50 %s, p99 %s, max %s (%s samples, %s incomplete)' % (
            ms('notify_p50_ms'), ms('notify_p99_ms'), ms('notify_max_ms'), result.get('notify_samples'),
            result.get('notify_incomplete'))),
        ('nacks to guests', json.dumps(result.get('nacks'))),
        ('drops the agents logged', json.dumps(result.get('agent_drops_logged'))),
        ('broker', safe_url(url)),
        ('duration', '%s s' % result.get('duration_s')),
    ]
    width = max(len(name) for name, _ in rows)
    print('\nha_guest server group messaging benchmark')
    for name, value in rows:
        print('%-*s  %s' % (width, name, value))
