"""Server group messaging benchmark: broadcast latency and throughput, notification latency (``bench --sgm``).

Everything is real except Nova and the guests' operating system: a RabbitMQ
broker, one ha-guest-controller process ([sgm] on, [nova_api] pointing at a
stand-in Nova that knows the servers and groups: ha_guest/testing/openstack_stub.py,
served by this process over HTTP to the controller's openstacksdk), four
ha-guest-compute processes (directory discovery, hosts bench-compute-1..4,
one folder each), and groups of 16 members, 4 on each host, served by one
helper process per host (ha_guest.testing.bench_sgm_guests) that speaks real
frames. The instances are SGM-only (``<uuid>.features`` says heartbeat off),
so the load is server group messaging alone.

Phases: every guest asks its group's status once (all members, exactly one
``self``); broadcasts one at a time (light load: guest send -> every peer's
receipt); every guest broadcasting at --rate per second for --load-s seconds
(sustained); Nova versioned notifications, one at a time, on Nova's exchange
and topic (published -> every peer of the member has the ``notification``).

    python -m ha_guest.testing.bench --sgm --json sgm.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any, Optional

from ha_guest.testing.bench_procs import BenchError, CpuMeter, Service, cpu_seconds, find_process, run_main
from ha_guest.testing.bench_report import percentile, rounded
from ha_guest.testing.bench_sgm_parts import (
    Layout,
    SgmHelper,
    cpu_ms_per_broadcast,
    load_figures,
    logged_drops,
    print_sgm_table,
)
from ha_guest.testing.messaging import check_broker, make_conf, service_config, transport_url
from ha_guest.testing.waiting import wait_for

HOSTS = 4
GROUP_SIZE = 16
SGM_ONLY = {'heartbeat': False, 'server_group_messaging': True}


def _nova_stub() -> Any:
    """Return the stand-in Nova (ha_guest.testing.openstack_stub) and its option helper."""
    from ha_guest.testing.openstack_stub import OpenStackStub, nova_api_options

    return OpenStackStub, nova_api_options



def compute_conf_default(name: str) -> Any:
    """Return the default of a [compute] option."""
    from ha_guest.conf import compute as compute_conf

    return next(opt.default for opt in compute_conf.OPTS if opt.name == name)

class SgmBench:
    """One SGM benchmark run; ``cleanup()`` stops everything it started."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix='ha-guest-bench-sgm-')
        self.layout: Layout = None  # type: ignore[assignment]  # made with the stand-in Nova
        self.services: dict[str, Service] = {}
        self.helpers: list[SgmHelper] = []
        self.stub: Any = None
        self.notifier: Any = None
        self.started = time.monotonic()
        self.result: dict[str, Any] = {
            'groups': args.groups, 'group_size': GROUP_SIZE, 'hosts': HOSTS, 'guests': args.groups * GROUP_SIZE,
            'payload_bytes': args.payload_bytes, 'heartbeat': 'off (SGM-only instances)',
            'sgm_batch_window_ms': (args.batch_window_ms if args.batch_window_ms is not None
                                    else compute_conf_default('sgm_batch_window_ms')),
            'executor_threads': args.executor_threads or 64}

    def log(self, text: str) -> None:
        print('[bench-sgm %6.1f s] %s' % (time.monotonic() - self.started, text), file=sys.stderr, flush=True)

    def run(self) -> dict[str, Any]:
        """Start everything, measure, return the figures."""
        try:
            check_broker(self.args.transport_url)
        except ConnectionError as exc:
            raise BenchError(str(exc)) from None
        self.result['load_average_at_start'] = list(os.getloadavg())
        self._start_nova()
        self._start_controller()
        self._start_guests()
        self._start_computes()
        self._status()
        self._light_broadcasts()
        self._sustained()
        self._notifications()
        self._finish()
        self.result['duration_s'] = round(time.monotonic() - self.started, 1)
        return self.result

    # -- set-up --------------------------------------------------------------------------------------

    def _start_nova(self) -> None:
        stub_class, self.nova_api_options = _nova_stub()
        self.stub = stub = stub_class()
        specs = {'ha_guest:heartbeat': 'false', 'ha_guest:server_group_messaging': 'true'}
        self.layout = Layout(self.args.groups, HOSTS, GROUP_SIZE, self.tmp,
                             lambda host: str(stub.add_server(specs, host=host).uuid),
                             lambda members: str(stub.add_group(members).uuid))
        stub.start()

    def _start_controller(self) -> None:
        from ha_guest.cmd import prepare_process

        prepare_process()  # before oslo.messaging, as the service mains do
        from ha_guest.testing.nova_notifications import NovaNotifier

        suffix = uuid.uuid4().hex[:8]
        # Exchanges of this run's own: a shared broker may hold an "openstack" or "nova" exchange that another
        # client declared with other arguments, which a declaration with amqp_auto_delete refuses (406).
        self.nova_exchange = 'nova_bench_' + suffix
        self.groups: dict[str, dict[str, Any]] = {
            'DEFAULT': {'control_exchange': 'ha_guest_bench_' + suffix},
            'rpc': {'controller_topic': 'bench_controller_' + suffix,
                    'controller_sync_topic': 'bench_controller_sync_' + suffix,
                    'compute_topic': 'bench_compute_' + suffix}}
        # The services' own: an RPC server option, which the bench's client configuration does not have.
        self.service_defaults = dict(self.groups['DEFAULT'])
        if self.args.executor_threads:
            self.service_defaults['executor_thread_pool_size'] = self.args.executor_threads
        controller_groups = dict(self.groups, DEFAULT=self.service_defaults, controller={
            'fault_sinks': ['log'], 'announce_journal': os.path.join(self.tmp, 'controller-announced.jsonl')}, sgm={
            'enabled': True, 'notification_topics': [self.args.nova_topic], 'notification_exchange': self.nova_exchange,
            # A pool of this run's own: a listener of another run or test never takes our notifications.
            'notification_pool': 'ha_guest-sgm-bench-' + suffix}, nova_api=self.nova_api_options(self.stub))
        config = service_config(os.path.join(self.tmp, 'controller.conf'), self.args.transport_url,
                                'bench-controller', controller_groups)
        controller = self.services['controller'] = Service('ha-guest-controller', 'ha_guest.cmd.controller', config,
                                                           os.path.join(self.tmp, 'controller.log'))
        from ha_guest import rpc

        conf = make_conf(self.args.transport_url, 'bench', self.groups)
        transport = rpc.get_rpc_transport(conf)
        api = rpc.ControllerAPI(conf, transport, timeout=1)

        def answers() -> bool:
            controller.check()
            try:
                # Any answer (a nack for an instance Nova doesn't know) means the SGM endpoint is up.
                return bool(api.sgm_status({}, str(uuid.uuid4()), timeout=1))
            except Exception:  # noqa: BLE001 - not up yet
                return False

        try:
            wait_for(answers, 30.0, 0.1, 'the controller to answer sgm_status', error=BenchError)
        finally:
            transport.cleanup()
        self.notifier = NovaNotifier(self.args.transport_url, topics=[self.args.nova_topic],
                                     exchange=self.nova_exchange)
        self.log('controller up (pid %d), stand-in Nova at %s' % (controller.pid, self.stub.url))

    def _start_guests(self) -> None:
        for index, host in enumerate(self.layout.hosts):
            folder = self.layout.folder(host)
            os.makedirs(folder)
            spec = []
            for guest in self.layout.on_host(host):
                # The features file first: discovery reads it when the socket appears.
                with open(os.path.join(folder, '%s.features' % guest.uuid), 'w', encoding='utf-8') as handle:
                    json.dump(SGM_ONLY, handle)
                spec.append({'uuid': guest.uuid, 'folder': folder})
            spec_path = os.path.join(self.tmp, 'guests-%d.json' % index)
            with open(spec_path, 'w', encoding='utf-8') as handle:
                json.dump(spec, handle)
            self.helpers.append(SgmHelper(index, host, spec_path, os.path.join(self.tmp, 'guests-%d.log' % index)))
        for helper in self.helpers:
            helper.read_ready()

    def _start_computes(self) -> None:
        for index, host in enumerate(self.layout.hosts, 1):
            compute = {'discovery_driver': 'directory', 'directory_path': self.layout.folder(host),
                       'state_file': os.path.join(self.tmp, '%s-state.json' % host)}
            if self.args.batch_window_ms is not None:
                compute['sgm_batch_window_ms'] = self.args.batch_window_ms
            groups = dict(self.groups, DEFAULT=self.service_defaults, compute=compute)
            config = service_config(os.path.join(self.tmp, '%s.conf' % host), self.args.transport_url, host, groups)
            self.services['compute-%d' % index] = Service('ha-guest-compute', 'ha_guest.cmd.compute', config,
                                                          os.path.join(self.tmp, '%s.log' % host))
        t0 = time.monotonic()
        total = len(self.layout.guests)

        def connected() -> bool:
            for service in self.services.values():
                service.check()
            return sum(helper.ask('status')['acked'] for helper in self.helpers) >= total

        wait_for(connected, 60.0, 0.2, 'every guest to have a session with its compute agent', error=BenchError)
        self.result['sessions_s'] = round(time.monotonic() - t0, 2)
        self.log('4 compute agents up: %d guests in session after %.1f s' % (total, time.monotonic() - t0))
        self.cpu_at_start = self._cpu()

    def _pids(self) -> dict[str, int]:
        pids = {name: service.pid for name, service in self.services.items()}
        pids.update(('guests-%d' % h.index, h.pid) for h in self.helpers)
        pids['bench'] = os.getpid()
        broker = find_process('beam.smp')
        if broker is not None:
            pids['broker'] = broker
        return pids

    def _cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self._pids().items()}

    # -- phases --------------------------------------------------------------------------------------

    def _status(self) -> None:
        """Every guest asks its group's status once: every member listed, exactly one self."""
        good, times = 0, []
        for guest in self.layout.guests:
            t0 = time.monotonic()
            answer = self.helpers[guest.host_index].ask('ask %s 5' % guest.uuid)
            times.append(1000.0 * (time.monotonic() - t0))
            members = answer.get('members') or []
            if (len(members) == GROUP_SIZE and sum(m['self'] for m in members) == 1
                    and {m['uuid'] for m in members} == set(self.layout.group_of(guest).members)):
                good += 1
            elif len(times) - good <= 3:
                self.log('status of %s: %s' % (guest.uuid, answer))
        self.result.update({'status_ok': good, 'status_first_p50_ms': rounded(percentile(times, 0.5)),
                            'status_first_max_ms': rounded(max(times))})
        self.log('status: %d of %d guests got every member and one self' % (good, len(self.layout.guests)))

    def _light_broadcasts(self) -> None:
        """One broadcast at a time; each is done when every peer has it."""
        latencies, incomplete = [], 0
        guests = self.layout.guests
        for index in range(self.args.samples):
            sender = guests[index % len(guests)]
            sent = self.helpers[sender.host_index].ask('send %s' % sender.uuid)
            if 'seq' not in sent:
                raise BenchError('guest %s could not send: %s' % (sender.uuid, sent))
            expected = self.layout.peers_by_host(sender)
            for helper in self.helpers:
                helper.write('wait_bcast %s %d %d 2' % (sender.uuid, sent['seq'], expected[helper.host]))
            answers = [helper.read() for helper in self.helpers]
            if sum(a['count'] for a in answers) < GROUP_SIZE - 1:
                incomplete += 1
                continue
            latencies.append((max(a['last'] for a in answers) - sent['t']) / 1e6)
            time.sleep(self.args.pause_ms / 1000.0)
        self.result.update({
            'broadcast_samples': len(latencies), 'broadcast_incomplete': incomplete,
            'broadcast_p50_ms': rounded(percentile(latencies, 0.5)),
            'broadcast_p99_ms': rounded(percentile(latencies, 0.99)),
            'broadcast_max_ms': rounded(max(latencies, default=None))})
        self.log('light load: %d broadcasts, p50 %s ms, p99 %s ms' % (
            len(latencies), self.result['broadcast_p50_ms'], self.result['broadcast_p99_ms']))

    def _sustained(self) -> None:
        """Every guest broadcasts at --rate per second for --load-s seconds."""
        args = self.args
        start_ns = time.time_ns() + 500_000_000
        for helper in self.helpers:
            helper.ask('load %s %d %s' % (args.rate, start_ns, args.load_s))
        self.log('sustained load: %d guests x %.1f/s for %.0f s' % (len(self.layout.guests), args.rate, args.load_s))
        time.sleep(max(0.0, (start_ns - time.time_ns()) / 1e9))
        meter = CpuMeter(self._pids())
        meter.start()
        time.sleep(args.load_s)
        meter.stop()
        # Drain: until nothing more arrives for a moment (or 30 s), so the next phase starts on an idle system.
        last, deadline = -1, time.monotonic() + 30.0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = sum(helper.ask('status')['deliveries'] for helper in self.helpers)
            if now == last:
                break
            last = now
        reports = [helper.ask('report') for helper in self.helpers]
        self.result.update(load_figures(reports, start_ns, args.load_s, GROUP_SIZE - 1))
        self.result['load_cpu_percent'] = meter.percent
        self.result['load_cpu_ms_per_broadcast'] = cpu_ms_per_broadcast(meter.percent, self.result['offered_per_s'])
        self.log('sustained: %s broadcasts/s delivered to every peer, %s lost' % (
            self.result['broadcasts_per_s'], self.result['broadcasts_lost']))

    def _notifications(self) -> None:
        """One Nova notification at a time: published -> every peer guest has the notification."""
        from ha_guest.testing.nova_notifications import NovaInstance

        events = (('instance.power_off.end', 'stopped', 'shutdown'), ('instance.power_on.end', 'active', 'running'))
        latencies, incomplete = [], 0
        guests = self.layout.guests
        for index in range(self.args.notify_samples):
            member = guests[index % len(guests)]
            event, state, power = events[(index // len(guests)) % 2]
            expected = self.layout.peers_by_host(member)
            since = time.time_ns()
            for helper in self.helpers:
                helper.write('wait_note %s %s %d %d 3' % (member.uuid, event, since, expected[helper.host]))
            published = time.time_ns()
            self.notifier.instance_event(NovaInstance(uuid=member.uuid, host=member.host, vm_state=state,
                                                      power_state=power), event)
            answers = [helper.read() for helper in self.helpers]
            if sum(a['count'] for a in answers) < GROUP_SIZE - 1:
                incomplete += 1
                continue
            latencies.append((max(a['last'] for a in answers) - published) / 1e6)
            time.sleep(self.args.pause_ms / 1000.0)
        self.result.update({
            'notify_samples': len(latencies), 'notify_incomplete': incomplete,
            'notify_p50_ms': rounded(percentile(latencies, 0.5)),
            'notify_p99_ms': rounded(percentile(latencies, 0.99)),
            'notify_max_ms': rounded(max(latencies, default=None))})
        self.log('notifications: %d, p50 %s ms, p99 %s ms' % (
            len(latencies), self.result['notify_p50_ms'], self.result['notify_p99_ms']))

    def _finish(self) -> None:
        statuses = [helper.ask('status') for helper in self.helpers]
        nacks: dict[str, int] = {}
        for status in statuses:
            for reason, count in status['nacks'].items():
                nacks[reason] = nacks.get(reason, 0) + count
        cpu = self._cpu()
        self.result.update({
            'nacks': nacks,
            'guest_errors': sum(s['errors'] for s in statuses),
            'self_deliveries': sum(s['self_deliveries'] for s in statuses),
            'misattributed': sum(s['misattributed'] for s in statuses),
            'reconnections': sum(s['connections'] for s in statuses) - len(self.layout.guests),
            'cpu_seconds': {name: round(cpu[name] - self.cpu_at_start.get(name, 0.0), 2) for name in cpu},
        })
        for service in self.services.values():
            service.check()

    def cleanup(self) -> None:
        """Stop the compute agents, the helpers, the controller, the stand-in Nova; remove the temp folder."""
        statuses = {}
        for name, service in self.services.items():
            if name.startswith('compute'):
                statuses[name] = service.stop()
        for helper in self.helpers:
            helper.stop()
        if 'controller' in self.services:
            statuses['controller'] = self.services['controller'].stop()
        if self.notifier is not None:
            self.notifier.close()
        if self.stub is not None:
            self.stub.stop()
        self.result['exit_statuses'] = statuses
        # After the agents stopped: their last lines are written.
        self.result['agent_drops_logged'] = logged_drops([s.log_path for n, s in self.services.items()
                                                          if n.startswith('compute')])
        if self.args.keep:
            print('logs kept in %s' % self.tmp, file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the SGM benchmark; 0 when it ran to the end (the figures say how good they are)."""
    parser = argparse.ArgumentParser(prog='ha-guest-bench --sgm', description=__doc__.splitlines()[0])
    parser.add_argument('--groups', type=int, default=8, help='server groups of 16 members (default 8)')
    parser.add_argument('--rate', type=float, default=8.0,
                        help='broadcasts per second of every guest under sustained load (default 8; the limit is 10)')
    parser.add_argument('--load-s', type=float, default=12.0, help='sustained load window (default 12)')
    parser.add_argument('--samples', type=int, default=300, help='light-load broadcasts (default 300)')
    parser.add_argument('--notify-samples', type=int, default=200, help='Nova notifications (default 200)')
    parser.add_argument('--pause-ms', type=float, default=5.0, help='pause between light-load samples')
    parser.add_argument('--batch-window-ms', type=float, default=None,
                        help="the compute agents' [compute] sgm_batch_window_ms (default: the option's default)")
    parser.add_argument('--executor-threads', type=int, default=0,
                        help="the controller's [DEFAULT] executor_thread_pool_size (default: oslo.messaging's, 64; "
                             "the compute agents serve RPC on one thread)")
    parser.add_argument('--nova-topic', default='versioned_notifications', help="Nova's versioned notifications topic")
    parser.add_argument('--payload-bytes', type=int, default=3050, choices=[3050], help=argparse.SUPPRESS)
    parser.add_argument('--json', metavar='PATH', help='write the figures to this file as JSON')
    parser.add_argument('--transport-url', default=transport_url(),
                        help='broker (default: $HA_GUEST_TRANSPORT_URL or the local RabbitMQ)')
    parser.add_argument('--keep', action='store_true', help='keep the temporary folder (service logs)')
    args = parser.parse_args(argv)
    if args.groups < 1 or not 0 < args.rate <= 10.0:
        parser.error('--groups must be positive and --rate in (0, 10]')
    return run_main(SgmBench(args), print_sgm_table, args)

if __name__ == '__main__':
    sys.exit(main())
