"""ha_guest benchmark: detection latency, false alarms and compute agent CPU at N guests (``tox -e bench``).

Everything is real except the guests' operating system: a RabbitMQ broker, an
ha-guest-controller process (sinks log and notifications) and an
ha-guest-compute process (directory discovery), and N protocol guests served
by a few helper processes (ha_guest.testing.bench_guests) that bind
``<uuid>.sock`` where the compute agent looks, the way QEMU does, and speak
real frames. After a warm-up, the compute agent's CPU is measured over a
steady-state window; then a sample of guests is hung one by one at recorded
wall times (they stop answering), and the detection latency of each is the
time from its hang to the arrival of its ``ha_guest.heartbeat.fault.raised``
notification at a listener of this process on the controller's notifications
topic: compute agent -> RPC -> controller registry -> notification sink ->
broker -> listener. Any fault of a guest that was not hung is a false alarm.

    python -m ha_guest.testing.bench --guests 1000 --interval-ms 100 --json result.json
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any, Optional

from ha_guest.testing.bench_metrics import MetricsPhase
from ha_guest.testing.bench_plot import plot
from ha_guest.testing.bench_procs import (
    BenchError,
    CpuMeter,
    CpuSampler,
    FaultListener,
    GuestHelper,
    Service,
    find_process,
    run_main,
)
from ha_guest.testing.bench_report import percentile, print_table, rounded
from ha_guest.testing.messaging import check_broker, service_config, transport_url
from ha_guest.testing.waiting import wait_for

RAISED, CLEARED = 'ha_guest.heartbeat.fault.raised', 'ha_guest.heartbeat.fault.cleared'
GUESTS_PER_HELPER = 250
MAX_HELPERS = 4



class Bench:
    """One benchmark run; ``cleanup()`` stops everything it started."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix='ha-guest-bench-')
        self.folder = os.path.join(self.tmp, 'channels')
        os.mkdir(self.folder)
        self.services: dict[str, Service] = {}
        self.helpers: list[GuestHelper] = []
        self.owner: dict[str, GuestHelper] = {}
        self.listener: Any = None
        self._server: Any = None
        self.transport: Any = None
        self.started = time.monotonic()
        self.result: dict[str, Any] = {'guests': args.guests, 'interval_ms': args.interval_ms}
        self.detection_ms: list[float] = []
        self.agent_ms: list[float] = []

    def log(self, text: str) -> None:
        print('[bench %6.1f s] %s' % (time.monotonic() - self.started, text), file=sys.stderr, flush=True)

    def _begin(self) -> None:
        """Start the clocks and check the broker, before any process starts."""
        self.started = time.monotonic()
        self.started_wall = time.time()
        try:
            check_broker(self.args.transport_url)
        except ConnectionError as exc:
            raise BenchError(str(exc)) from None
        self.result['load_average_at_start'] = list(os.getloadavg())

    def run(self) -> dict[str, Any]:
        """Start everything, measure, return the figures."""
        args = self.args
        self._begin()
        self._start_controller()
        self._start_guests()
        self._start_compute()
        self.log('warm-up %.0f s' % args.warmup_s)
        time.sleep(args.warmup_s)
        metrics = None
        if args.metrics:  # without, then with (bench_metrics.py): before the sampler, which follows one agent pid
            self._steady_state()
            metrics = MetricsPhase(self)
            metrics.run()
        sampler = CpuSampler(self._pids())
        sampler.start()
        try:
            if metrics is None:
                self._steady_state()
            self._hangs()
            self._recoveries()
        finally:
            sampler.stop()
            self.result['cpu_per_s'] = sampler.samples
            machine = [sample['machine'] for sample in sampler.samples]
            steady = [sample['machine'] for sample in sampler.samples if sample['t'] <= self.args.steady_s]
            self.result['machine_cpu_percent_steady'] = round(sum(steady) / len(steady), 1) if steady else None
            self.result['machine_cpu_percent_max'] = max(machine, default=None)
            scrape = metrics.finish() if metrics is not None else None
        self._false_alarms()
        self.result['duration_s'] = round(time.monotonic() - self.started, 1)
        if args.plot:
            plot(args.plot, self.result, self.detection_ms, self.agent_ms, scrape)
            self.log('latency plot written to %s' % args.plot)
        return self.result

    def _start_controller(self) -> None:
        from ha_guest.cmd import prepare_process

        prepare_process()  # before oslo.messaging, as the service mains do
        import oslo_messaging

        from ha_guest import rpc
        from ha_guest.testing.messaging import make_conf

        suffix = uuid.uuid4().hex[:8]
        self.groups: dict[str, dict[str, Any]] = {
            'rpc': {'controller_topic': 'bench_controller_' + suffix,
                    'controller_sync_topic': 'bench_controller_sync_' + suffix,
                    'compute_topic': 'bench_compute_' + suffix},
            'controller': {'fault_sinks': ['log', 'notifications'],
                           'announce_journal': os.path.join(self.tmp, 'controller-announced.jsonl')},
            'sink_notifications': {'topics': ['bench_notifications_' + suffix]},
        }
        conf = make_conf(self.args.transport_url, 'bench', self.groups)
        self.transport = rpc.get_notification_transport(conf)
        self.listener = FaultListener()
        targets = [oslo_messaging.Target(topic=topic) for topic in conf.sink_notifications.topics]
        self._server = oslo_messaging.get_notification_listener(self.transport, targets, [self.listener])
        self._server.start()
        config = service_config(os.path.join(self.tmp, 'controller.conf'), self.args.transport_url,
                                'bench-controller', self.groups)
        self.services['controller'] = Service('ha-guest-controller', 'ha_guest.cmd.controller', config,
                                              os.path.join(self.tmp, 'controller.log'))
        rpc_transport = rpc.get_rpc_transport(conf)
        api = rpc.ControllerAPI(conf, rpc_transport, timeout=1)

        def answers() -> bool:
            self.services['controller'].check()
            try:
                api.list_faults(None)
            except oslo_messaging.MessagingTimeout:
                return False
            return True

        wait_for(answers, 30.0, 0.1, 'the controller to answer list_faults', error=BenchError)
        rpc_transport.cleanup()
        self.log('controller up (pid %d)' % self.services['controller'].pid)

    def _start_guests(self) -> None:
        args = self.args
        count = args.helpers or min(MAX_HELPERS, max(2, math.ceil(args.guests / GUESTS_PER_HELPER)))
        shares = [args.guests // count + (1 if i < args.guests % count else 0) for i in range(count)]
        for index, share in enumerate(shares):
            self.helpers.append(GuestHelper(index, self.folder, share, args.interval_ms,
                                            os.path.join(self.tmp, 'guests-%d.log' % index)))
        for helper in self.helpers:
            for instance in helper.read_ready():
                self.owner[instance] = helper
        self.log('%d guests bound <uuid>.sock in %s (%d helper processes)' % (len(self.owner), self.folder,
                                                                              len(self.helpers)))

    def _start_compute(self, **extra: dict[str, Any]) -> None:
        """Start the compute agent (``extra``: more option groups); ready when every guest connected and registered."""
        groups = dict(self.groups, compute={
            'discovery_driver': 'directory', 'directory_path': self.folder,
            'state_file': os.path.join(self.tmp, 'compute-state.json')}, **extra)
        connections0 = sum(h.ask('status')['connections'] for h in self.helpers)  # a restart: new ones
        config = service_config(os.path.join(self.tmp, 'compute.conf'), self.args.transport_url, 'bench-compute',
                                groups)
        compute = self.services['compute'] = Service('ha-guest-compute', 'ha_guest.cmd.compute', config,
                                                     os.path.join(self.tmp, 'compute.log'))
        t0 = time.monotonic()

        def registered() -> bool:
            compute.check()
            status = [h.ask('status') for h in self.helpers]
            return (sum(s['registered'] for s in status) >= self.args.guests
                    and sum(s['connections'] for s in status) >= connections0 + self.args.guests)

        wait_for(registered, 30.0 + self.args.guests / 50.0, 0.2, 'every guest to register with the compute agent',
                 error=BenchError)
        self.result['registration_s'] = round(time.monotonic() - t0, 2)
        self.log('compute agent up (pid %d): %d guests registered in %.1f s'
                 % (compute.pid, self.args.guests, time.monotonic() - t0))

    def _pids(self) -> dict[str, int]:
        pids = {'agent': self.services['compute'].pid, 'controller': self.services['controller'].pid,
                'bench': os.getpid()}
        pids.update(('guests-%d' % h.index, h.pid) for h in self.helpers)
        broker = find_process('beam.smp')
        if broker is not None:
            pids['broker'] = broker
        return pids

    def _steady_state(self) -> None:
        meter = CpuMeter(self._pids())
        answered0 = sum(h.ask('status')['answered'] for h in self.helpers)
        meter.start()
        time.sleep(self.args.steady_s)
        meter.stop()
        answered = sum(h.ask('status')['answered'] for h in self.helpers) - answered0
        for service in self.services.values():
            service.check()
        helpers = [meter.percent['guests-%d' % h.index] for h in self.helpers]
        self.result.update({
            'agent_cpu_percent': meter.percent['agent'],
            'controller_cpu_percent': meter.percent['controller'],
            'guest_processes_cpu_percent': round(sum(helpers), 1),
            'guest_processes_cpu_percent_max': max(helpers),
            'guest_processes': len(self.helpers),
            'broker_cpu_percent': meter.percent.get('broker'),
            'steady_s': round(meter.seconds, 1),
            'answers_per_s': round(answered / meter.seconds),
        })
        self.log('steady state %.0f s: agent %.1f %% of a core, %d answers/s' % (
            meter.seconds, meter.percent['agent'], answered / meter.seconds))

    def _hangs(self) -> None:
        args = self.args
        count = args.hang if args.hang is not None else min(50, max(1, args.guests // 2))
        sample = random.sample(sorted(self.owner), min(count, len(self.owner)))
        schedule = [(random.uniform(0.0, args.hang_window_s), 'hang', instance) for instance in sample]
        if args.resume == 'each':  # every hang lasts hold_s, then the guest answers again
            schedule += [(offset + args.hold_s, 'resume', instance) for offset, _, instance in schedule]
        schedule.sort()
        self.hung_at: dict[str, float] = {}
        self.resumed_at: dict[str, float] = {}
        self.log('hanging %d guests at random times over %.0f s (resume: %s)' % (
            len(sample), args.hang_window_s, args.resume))
        t0 = time.monotonic()
        for offset, command, instance in schedule:
            time.sleep(max(0.0, t0 + offset - time.monotonic()))
            reply = self.owner[instance].ask('%s %s' % (command, instance))
            (self.hung_at if command == 'hang' else self.resumed_at).update(reply.get('hung') or reply['resumed'])

        def detected() -> dict[str, tuple[float, dict[str, Any]]]:
            found = {}
            for t, p in self.listener.of(RAISED):
                instance = p.get('instance_uuid')
                if instance in self.hung_at and t >= self.hung_at[instance] and instance not in found:
                    found[instance] = (t, p)
            return found

        deadline = time.monotonic() + args.detect_timeout_s
        while len(detected()) < len(self.hung_at) and time.monotonic() < deadline:
            time.sleep(0.1)
        found = detected()
        latencies = self.detection_ms = [1000.0 * (t - self.hung_at[i]) for i, (t, _) in found.items()]
        at_agent = self.agent_ms = [1000.0 * (p['detected_at'] - self.hung_at[i]) for i, (_, p) in found.items()]
        self.result.update({
            'samples': len(self.hung_at), 'detected': len(found),
            'detection_p50_ms': rounded(percentile(latencies, 0.5)),
            'detection_p99_ms': rounded(percentile(latencies, 0.99)),
            'detection_min_ms': rounded(min(latencies, default=None)),
            'detection_max_ms': rounded(max(latencies, default=None)),
            'agent_detection_p50_ms': rounded(percentile(at_agent, 0.5)),
            'agent_detection_p99_ms': rounded(percentile(at_agent, 0.99)),
        })
        self.log('%d of %d hung guests detected' % (len(found), len(self.hung_at)))

    def _recoveries(self) -> None:
        if self.args.resume == 'none':
            return
        if self.args.resume == 'burst':  # every hung guest answers again at once
            by_helper: dict[int, list[str]] = {}
            for instance in self.hung_at:
                by_helper.setdefault(self.owner[instance].index, []).append(instance)
            for helper in self.helpers:
                if helper.index in by_helper:
                    self.resumed_at.update(helper.ask('resume %s' % ' '.join(by_helper[helper.index]))['resumed'])

        def cleared() -> set[str]:
            return {p['instance_uuid'] for t, p in self.listener.of(CLEARED)
                    if t >= self.resumed_at.get(p['instance_uuid'], float('inf'))}

        deadline = time.monotonic() + self.args.detect_timeout_s
        while not set(self.hung_at) <= cleared() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.result['recovered'] = len(cleared() & set(self.hung_at))
        time.sleep(self.args.after_s)  # the system must stay quiet after the recoveries too

    def _false_alarms(self) -> None:
        def false(t: float, instance: Any) -> bool:
            if instance not in self.hung_at or t < self.hung_at[instance]:
                return True
            # A fault reported while the guest was hung may arrive a little after its resume; not later.
            return t > self.resumed_at.get(instance, float('inf')) + 0.5

        raised = self.listener.of(RAISED)
        bad = [p for t, p in raised if false(t, p.get('instance_uuid'))]
        self.result['false_alarms'] = len(bad)
        self.result['false_alarm_instances'] = sorted({str(p.get('instance_uuid')) for p in bad})[:20]
        per_s: dict[int, int] = {}
        for t, _ in raised:
            second = int(t - self.started_wall)
            per_s[second] = per_s.get(second, 0) + 1
        self.result['faults_raised_per_s'] = {str(k): v for k, v in sorted(per_s.items())}

    def cleanup(self) -> None:
        """Stop the compute agent, the helpers, the controller, the listener; remove the temp folder."""
        statuses = {}
        if 'compute' in self.services:
            statuses['compute'] = self.services['compute'].stop()
        for helper in self.helpers:
            helper.stop()
        if 'controller' in self.services:
            statuses['controller'] = self.services['controller'].stop()
        if self._server is not None:
            self._server.stop()
            self._server.wait()
        if self.transport is not None:
            self.transport.cleanup()
        self.result['exit_statuses'] = statuses
        if self.args.keep:
            print('logs kept in %s' % self.tmp, file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; 0 when it ran to the end (the figures say how good they are)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if '--sgm' in arguments:  # the server group messaging benchmark: options of its own
        from ha_guest.testing import bench_sgm

        arguments.remove('--sgm')
        return bench_sgm.main(arguments)
    if '--hostile' in arguments:  # healthy guests' monitoring under attack by hostile guests: options of its own
        from ha_guest.testing import bench_hostile

        arguments.remove('--hostile')
        return bench_hostile.main(arguments)
    parser = argparse.ArgumentParser(prog='ha-guest-bench', description=__doc__.splitlines()[0])
    parser.add_argument('--guests', type=int, default=100)
    parser.add_argument('--interval-ms', type=int, default=100)
    parser.add_argument('--json', metavar='PATH', help='write the figures to this file as JSON')
    parser.add_argument('--transport-url', default=transport_url(),
                        help='broker (default: $HA_GUEST_TRANSPORT_URL or the local RabbitMQ)')
    parser.add_argument('--helpers', type=int, default=0, help='guest helper processes (default: 2 to 4)')
    parser.add_argument('--warmup-s', type=float, default=3.0)
    parser.add_argument('--steady-s', type=float, default=10.0, help='CPU measuring window (default 10)')
    parser.add_argument('--hang', type=int, default=None,
                        help='guests to hang, one by one (default 50, at most half of them)')
    parser.add_argument('--hang-window-s', type=float, default=10.0, help='spread the hangs over this long')
    parser.add_argument('--resume', choices=('each', 'burst', 'none'), default='each',
                        help='each: a hung guest answers again hold-s after its hang (default); burst: all '
                             'hung guests answer again at once after the detection phase; none: never')
    parser.add_argument('--hold-s', type=float, default=1.0, help='how long each hang lasts (--resume each)')
    parser.add_argument('--after-s', type=float, default=2.0, help='quiet time watched after the recoveries')
    parser.add_argument('--detect-timeout-s', type=float, default=5.0)
    parser.add_argument('--keep', action='store_true', help='keep the temporary folder (service logs)')
    parser.add_argument('--metrics', action='store_true',
                        help='measure the agent\'s CPU without, then with its metrics endpoint scraped (restarts '
                             'it in between; use --steady-s 60 for several scrapes per window)')
    parser.add_argument('--scrape-s', type=float, default=15.0, help='--metrics: seconds between scrapes (15)')
    parser.add_argument('--metrics-rounds', type=int, default=1,
                        help='--metrics: windows with metrics; from the second on, each after one without (1)')
    parser.add_argument('--plot', metavar='PATH', help='draw the latency distributions to this PNG (matplotlib)')
    parser.add_argument('--sgm', action='store_true',
                        help='run the server group messaging benchmark instead (--sgm --help: its options)')
    parser.add_argument('--hostile', action='store_true',
                        help='run the hostile guests benchmark instead (--hostile --help: its options)')
    args = parser.parse_args(arguments)
    if args.guests < 1 or args.interval_ms < 100:
        parser.error('--guests must be positive and --interval-ms at least 100')
    if args.metrics_rounds < 1:
        parser.error('--metrics-rounds must be at least 1')
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the services inherit it: a socket per guest
    return run_main(Bench(args), print_table, args)

if __name__ == '__main__':
    sys.exit(main())
