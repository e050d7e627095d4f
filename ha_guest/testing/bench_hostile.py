"""The hostile benchmark: healthy guests' monitoring while hostile guests attack (``tox -e bench -- --hostile``).

The setup of ha_guest.testing.bench (a real RabbitMQ, ha-guest-controller,
ha-guest-compute with directory discovery, N healthy guests in
bench_guests helpers) plus one hostile guest of each kind in a
hostile_guests helper process (ha_guest.testing.hostile_guests and
hostile_sessions). Every hostile guest registers and behaves until the
attack. Then:

1. **baseline**: the compute agent's CPU over ``--steady-s``, nothing hostile;
2. **attack**: every hostile guest starts at once; after ``--settle-s`` the
   agent's CPU is measured over ``--quiet-s`` (the attack alone:
   ``attack_no_hangs_agent_cpu_percent``), then, ``attack_agent_cpu_percent``,
   while a sample of healthy guests is hung one at a time (each answers
   again ``--hold-s`` later) and the latency hang ->
   ``fault.raised`` notification is timed, as the plain benchmark does.
   A fault of a healthy guest that was not hung is a false alarm; faults of
   hostile guests are counted apart, per kind (a flooding guest's own
   answers are dropped while it is over its budget, so it may be reported).
   The flapper's ``fault.raised`` notifications over the attack give
   ``flap_incidents_per_min``;
3. **hostile hangs**: every hostile guest stops answering (its attack goes
   on); one not shown as faulted by the notifications (last one
   ``fault.raised``, none ``fault.cleared`` since the hang) within
   ``--report-bound-s`` counts in ``unreported_hangs``.

    python -m ha_guest.testing.bench --hostile --guests 200 --json hostile.json
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any, Optional

from ha_guest.testing.bench import CLEARED, RAISED, Bench
from ha_guest.testing.bench_procs import BenchError, CpuMeter, CpuSampler, HelperProcess, run_main
from ha_guest.testing.bench_report import safe_url
from ha_guest.testing.messaging import transport_url
from ha_guest.testing.waiting import wait_for

#: One hostile guest of each kind: the issue's name -> the hostile helper's kind.
KINDS = {
    'blank-line flood': 'lf', 'junk bytes': 'junk', 'unterminated line': 'partial', 'oversized lines': 'oversized',
    'bad UTF-8': 'badutf8', 'deep JSON': 'deepjson', 'huge integers': 'hugeint',
    'valid response flood': 'responses', 'valid init flood': 'inits', 'valid status_request flood': 'status_requests',
    'slowloris': 'slowloris', 'hello_ack replay': 'hello_ack', 'init flood, never answering': 'initflood',
    'flapper': 'flap',
}


class HostileBench(Bench):
    """The plain benchmark's services and healthy guests, one hostile guest of each kind, three phases."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.hostile: Optional[HelperProcess] = None
        self.bad: dict[str, str] = {}  # instance -> kind

    def run(self) -> dict[str, Any]:
        """Start everything, measure the three phases, return the figures."""
        args = self.args
        self._begin()
        self._start_controller()
        self._start_guests()
        self._start_hostile()
        self._start_compute()
        wait_for(lambda: self._hostile().ask('status')['registered'] >= len(KINDS), 30.0, 0.2,
                 'every hostile guest to register', error=BenchError)
        self.log('warm-up %.0f s' % args.warmup_s)
        time.sleep(args.warmup_s)
        sampler = CpuSampler(self._pids())
        sampler.start()
        try:
            self._steady_state()
            self.result['baseline_agent_cpu_percent'] = self.result.pop('agent_cpu_percent')
            self.result['baseline_s'] = self.result.pop('steady_s')
            self._attack()
            self._hostile_hangs()
        finally:
            sampler.stop()
            self.result['cpu_per_s'] = sampler.samples
        self._false_alarms()
        self.result['duration_s'] = round(time.monotonic() - self.started, 1)
        return self.result

    def _hostile(self) -> HelperProcess:
        assert self.hostile is not None
        return self.hostile

    def _start_hostile(self) -> None:
        self.hostile = HelperProcess(len(self.helpers), [
            '-m', 'ha_guest.testing.hostile_guests', '--folder', self.folder, '--guests', str(len(KINDS)),
            '--interval-ms', str(self.args.interval_ms), '--chunk-bytes', str(self.args.chunk_bytes),
            '--rate-hz', str(self.args.rate_hz)], os.path.join(self.tmp, 'hostile.log'))
        self.bad = dict(zip(self.hostile.read()['ready'], KINDS.values(), strict=True))
        self.log('%d hostile guests bound (%s)' % (len(self.bad), ', '.join(KINDS.values())))

    def _pids(self) -> dict[str, int]:
        pids = super()._pids()
        pids['hostile'] = self._hostile().pid
        return pids

    def _attack(self) -> None:
        args = self.args
        self.attack_wall = time.time()
        for instance, kind in self.bad.items():
            self._hostile().ask('flood %s %s' % (kind, instance))
        self.log('attack: %d hostile guests at once; settle %.0f s' % (len(self.bad), args.settle_s))
        time.sleep(args.settle_s)
        # The attack alone first: the window below also carries the hangs' faults, reports and state writes.
        quiet = CpuMeter({'agent': self.services['compute'].pid})
        quiet.start()
        time.sleep(args.quiet_s)
        quiet.stop()
        self.result['attack_no_hangs_agent_cpu_percent'] = quiet.percent['agent']
        meter = CpuMeter(self._pids())
        status0 = self._hostile().ask('status')
        meter.start()
        self._hangs()
        self._recoveries()
        meter.stop()
        self.attack_end_wall = time.time()
        status = self._hostile().ask('status')
        for service in self.services.values():
            service.check()
        helpers = [meter.percent['guests-%d' % h.index] for h in self.helpers]
        self.result.update({
            'attack_agent_cpu_percent': meter.percent['agent'],
            'attack_s': round(meter.seconds, 1),
            'attack_controller_cpu_percent': meter.percent['controller'],
            'attack_guest_processes_cpu_percent': round(sum(helpers), 1),
            'attack_hostile_process_cpu_percent': meter.percent['hostile'],
            'attack_broker_cpu_percent': meter.percent.get('broker'),
            'hostile_bytes_written_per_s': round((status['written'] - status0['written']) / meter.seconds),
            'hostile_chunks_held': status['held'] - status0['held'],
        })
        self.log('attack %.0f s: agent %.1f %% of a core (baseline %.1f %%)' % (
            meter.seconds, meter.percent['agent'], self.result['baseline_agent_cpu_percent']))
        flapper = [i for i, kind in self.bad.items() if kind == 'flap']
        incidents = [t for t, p in self.listener.of(RAISED) if p.get('instance_uuid') in flapper
                     and self.attack_wall <= t <= self.attack_end_wall]
        minutes = (self.attack_end_wall - self.attack_wall) / 60.0
        self.result['flap_incidents'] = len(incidents)
        self.result['flap_incidents_per_min'] = round(len(incidents) / minutes, 1)

    def _hostile_hangs(self) -> None:
        bound = self.args.report_bound_s
        hung = self._hostile().ask('hang %s' % ' '.join(self.bad))['hung']
        self.log('every hostile guest stops answering; reported within %.0f s?' % bound)

        def faulted() -> dict[str, Optional[float]]:
            """Hostile guests shown as faulted -> when raised after the hang (None: an incident already open)."""
            found: dict[str, Optional[float]] = {}
            last: dict[str, tuple[float, str]] = {}
            for t, event, payload in sorted((t, e, p) for e in (RAISED, CLEARED) for t, p in self.listener.of(e)):
                instance = payload.get('instance_uuid')
                if instance in self.bad:
                    last[instance] = (t, event)
            for instance, (t, event) in last.items():
                if event == RAISED:
                    found[instance] = t - hung[instance] if t >= hung[instance] else None
            return found

        deadline = time.monotonic() + bound
        while len(faulted()) < len(self.bad) and time.monotonic() < deadline:
            time.sleep(0.1)
        found = faulted()
        per_kind = {}
        for instance, kind in self.bad.items():
            if instance not in found:
                per_kind[kind] = 'NOT REPORTED'
            elif found[instance] is None:
                per_kind[kind] = 'fault already open'
            else:
                per_kind[kind] = 'reported after %.0f ms' % (1000.0 * (found[instance] or 0.0))
        self.result['unreported_hangs'] = len(self.bad) - len(found)
        self.result['hostile_hangs'] = per_kind
        self.log('%d of %d hung hostile guests reported' % (len(found), len(self.bad)))

    def _false_alarms(self) -> None:
        """False alarms of the healthy guests only; the hostile guests' faults per kind, apart."""
        listener = self.listener

        class Healthy:
            """The listener's view without the hostile guests."""

            @staticmethod
            def of(event_type: str) -> list[tuple[float, dict[str, Any]]]:
                return [(t, p) for t, p in listener.of(event_type) if p.get('instance_uuid') not in self.bad]

        self.listener = Healthy()
        try:
            super()._false_alarms()
        finally:
            self.listener = listener
        attack: dict[str, int] = {}
        for t, payload in listener.of(RAISED):
            kind = self.bad.get(payload.get('instance_uuid'))
            if kind is not None and self.attack_wall <= t <= self.attack_end_wall:
                attack[kind] = attack.get(kind, 0) + 1
        self.result['hostile_faults_during_attack'] = attack

    def cleanup(self) -> None:
        """Stop the hostile helper too."""
        super().cleanup()
        if self.hostile is not None:
            self.hostile.stop()


def print_table(result: dict[str, Any], url: str) -> None:
    """Print the figures against the issue's targets."""
    def value(name: str, unit: str = '') -> str:
        found = result.get(name)
        return '-' if found is None else '%s%s' % (found, unit)

    baseline = result.get('baseline_agent_cpu_percent') or 0.0
    rows = [
        ('guests / interval', '%s healthy + %d hostile / %s ms' % (result['guests'], len(KINDS), result['interval_ms']),
         ''),
        ('agent CPU, baseline', value('baseline_agent_cpu_percent', ' % of a core'), ''),
        ('agent CPU, under attack', value('attack_agent_cpu_percent', ' % of a core'), '<= %.1f' % (2 * baseline)),
        ('  the attack alone, no hangs', value('attack_no_hangs_agent_cpu_percent', ' % of a core'), ''),
        ('detection p50 / p99 under attack', '%s / %s ms (%s of %s detected)' % (
            value('detection_p50_ms'), value('detection_p99_ms'), value('detected'), value('samples')), '<= 250'),
        ('false alarms (healthy guests)', value('false_alarms'), '0'),
        ('flapper incidents per minute', value('flap_incidents_per_min'), '<= 10'),
        ('hostile guests hung, unreported', value('unreported_hangs'), '0'),
        ('broker', safe_url(url), ''),
        ('duration', value('duration_s', ' s'), ''),
    ]
    width = max(len(name) for name, _, _ in rows)
    print('\nha_guest hostile benchmark')
    for name, text, target in rows:
        print('%-*s  %-40s %s' % (width, name, text, ('target ' + target) if target else ''))
    for kind, outcome in sorted(result.get('hostile_hangs', {}).items()):
        print('  %-16s %s' % (kind, outcome))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the hostile benchmark; 0 when it ran to the end (the figures say how good they are)."""
    parser = argparse.ArgumentParser(prog='ha-guest-bench --hostile', description=__doc__.splitlines()[0])
    parser.add_argument('--guests', type=int, default=200, help='healthy guests (default 200)')
    parser.add_argument('--interval-ms', type=int, default=100)
    parser.add_argument('--json', metavar='PATH', help='write the figures to this file as JSON')
    parser.add_argument('--transport-url', default=transport_url(),
                        help='broker (default: $HA_GUEST_TRANSPORT_URL or the local RabbitMQ)')
    parser.add_argument('--helpers', type=int, default=0, help='healthy guest helper processes (default: 2 to 4)')
    parser.add_argument('--warmup-s', type=float, default=3.0)
    parser.add_argument('--steady-s', type=float, default=10.0, help='baseline CPU window (default 10)')
    parser.add_argument('--settle-s', type=float, default=2.0, help='attack under way before measuring')
    parser.add_argument('--quiet-s', type=float, default=5.0,
                        help='agent CPU under attack without hangs, measured before the hangs (default 5)')
    parser.add_argument('--chunk-bytes', type=int, default=65536, help="a flooding guest's write (default 64 KiB)")
    parser.add_argument('--rate-hz', type=float, default=16.0, help='writes a second of a flooding guest')
    parser.add_argument('--hang', type=int, default=None,
                        help='healthy guests to hang one by one under attack (default 50, at most half)')
    parser.add_argument('--hang-window-s', type=float, default=15.0, help='spread the hangs over this long')
    parser.add_argument('--hold-s', type=float, default=1.0, help='how long each hang lasts')
    parser.add_argument('--after-s', type=float, default=2.0, help='attack watched on after the recoveries')
    parser.add_argument('--detect-timeout-s', type=float, default=5.0)
    parser.add_argument('--report-bound-s', type=float, default=5.0,
                        help='a hung hostile guest not shown faulted this long after its hang is unreported')
    parser.add_argument('--keep', action='store_true', help='keep the temporary folder (service logs)')
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.guests < 2 or args.interval_ms < 100:
        parser.error('--guests must be at least 2 and --interval-ms at least 100')
    args.resume = 'each'
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return run_main(HostileBench(args), print_table, args)


if __name__ == '__main__':
    sys.exit(main())
