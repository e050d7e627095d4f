"""ha_guest chaos drills (``tox -e chaos``): our own parts fail, for real, and nothing is lost or doubled.

Each scenario runs real ha-guest-controller and ha-guest-compute processes,
protocol guests (ha_guest.testing.bench_guests) and a real RabbitMQ (the local
node, a private node it stops, or the 3-node cluster of
tools/rabbitmq-cluster.sh), kills with SIGKILL, and checks: every fault
arrives (nothing lost), each incident is announced once and recovered once
(nothing doubled), no healthy guest or host is reported (no false alarm). It
prints the figures and writes them as JSON; a scenario whose expectations fail
fails the run (exit status 1), none is ever skipped.

    python -m ha_guest.testing.chaos                       # every scenario
    python -m ha_guest.testing.chaos storm outage --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Optional

from ha_guest.testing import chaos_agent, chaos_broker, chaos_cluster, chaos_crash, chaos_storm
from ha_guest.testing.bench_report import safe_url
from ha_guest.testing.chaos_checks import Verdict
from ha_guest.testing.messaging import transport_url


class Drill:
    """What every scenario gets: the options, a temp folder, the broker URL and its verdict."""

    def __init__(self, args: argparse.Namespace, tmp: str) -> None:
        self.args = args
        self.tmp = tmp
        self.url: str = args.transport_url
        self.verdict = Verdict(args.enforce_targets)
        self.started = time.monotonic()

    def log(self, text: str) -> None:
        print('[chaos %6.1f s] %s' % (time.monotonic() - self.started, text), file=sys.stderr, flush=True)


Scenario = Callable[[Drill], None]
#: Name -> function, in the order they run.
SCENARIOS: dict[str, Scenario] = {
    'storm': chaos_storm.run,
    'broker_outage': chaos_broker.run_outage,
    'controller_kill': chaos_crash.run_controller_kill,
    'two_controllers': chaos_crash.run_two_controllers,
    'compute_kill': chaos_crash.run_compute_kill,
    'dead_agent': chaos_agent.run,
    'cluster': chaos_cluster.run,
}


def run_scenario(name: str, args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    """Run one scenario; return its result (passed, failures, figures, seconds)."""
    drill = Drill(args, os.path.join(tmp, name[:8]))  # short: guests bind UNIX sockets below
    os.makedirs(drill.tmp, exist_ok=True)
    drill.log('scenario %s' % name)
    try:
        SCENARIOS[name](drill)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken drill is a failed scenario, with its reason
        text = str(exc)  # a dead process's error carries its log's tail: keep the end, where the cause is
        drill.verdict.failures.append('%s: %s' % (type(exc).__name__, text if len(text) < 800 else '...' + text[-800:]))
        drill.log(traceback.format_exc())
    verdict = drill.verdict
    result: dict[str, Any] = {'passed': not verdict.failures, 'failures': verdict.failures,
                              'targets_missed': verdict.targets_missed, 'figures': verdict.figures,
                              'seconds': round(time.monotonic() - drill.started, 1)}
    drill.log('%s %s in %.0f s' % (name, 'PASSED' if result['passed'] else 'FAILED', result['seconds']))
    return result


def print_results(results: dict[str, dict[str, Any]], url: str) -> None:
    """Print every scenario's verdict and figures."""
    print('\nha_guest chaos drills (broker %s)' % safe_url(url))
    for name, result in results.items():
        print('\n%-16s %s (%.0f s)' % (name, 'PASSED' if result['passed'] else 'FAILED', result['seconds']))
        for key, value in result['figures'].items():
            text = json.dumps(value)
            print('    %-44s %s' % (key, text if len(text) <= 200 else text[:200] + ' ... (see the JSON)'))
        for failure in result['failures']:
            print('    FAILED: %s' % failure)
        for missed in result.get('targets_missed', ()):
            print('    TARGET MISSED: %s' % missed)
    passed = sum(r['passed'] for r in results.values())
    print('\nchaos: %d passed, %d failed' % (passed, len(results) - passed))


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m ha_guest.testing.chaos', description=__doc__.splitlines()[0])
    parser.add_argument('scenarios', nargs='*', metavar='SCENARIO',
                        help='scenarios to run (default: all): %s' % ', '.join(SCENARIOS))
    parser.add_argument('--json', default='.chaos/results.json', help='where to write the figures (JSON)')
    parser.add_argument('--transport-url', default=transport_url(),
                        help='the broker of the single-node scenarios (default: $HA_GUEST_TRANSPORT_URL or '
                             'the local RabbitMQ)')
    parser.add_argument('--storm', default='500,1000', help='storm sizes: guests hung at once, comma-separated')
    parser.add_argument('--cluster-script', default=os.path.join(os.getcwd(), 'tools', 'rabbitmq-cluster.sh'),
                        help='starts the 3-node cluster and prints its URL')
    parser.add_argument('--keep', action='store_true', help='keep the logs and the temp folder')
    parser.add_argument('--enforce-targets', action='store_true',
                        help='fail a scenario on a latency over its target too (by default such a figure is '
                             'reported as TARGET MISSED; lost, doubled and false reports always fail)')
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error('unknown scenario(s) %s; known: %s' % (', '.join(unknown), ', '.join(SCENARIOS)))
    args.storm_sizes = [int(n) for n in args.storm.split(',') if n]
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the scenarios, print and write the figures; 0 only when every scenario passed."""
    args = parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the services inherit it: a socket per guest
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: every scenario's cleanup runs
    tmp = tempfile.mkdtemp(prefix='hgc-')
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in args.scenarios or list(SCENARIOS):
            results[name] = run_scenario(name, args, tmp)
    except KeyboardInterrupt:
        print('chaos interrupted', file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print('logs kept in %s' % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_results(results, args.transport_url)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w', encoding='utf-8') as handle:
            json.dump(results, handle, indent=2, sort_keys=True)
            handle.write('\n')
        print('figures written to %s' % args.json)
    return 0 if all(r['passed'] for r in results.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
