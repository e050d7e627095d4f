"""Chaos drill ``cluster``: a 3-node RabbitMQ cluster loses the node our services use (kill -9, then SIGSTOP).

tools/rabbitmq-cluster.sh starts the cluster; the drill runs in a fresh vhost
with oslo.messaging's recommended cluster options (quorum queues, transient
quorum reply queues with the queue manager, stream fanout). The services list
the nodes 1, 2, 3 and use the first that answers; the drill's listeners are
on nodes other than the victim, so what they measure is our services' delay.
A prober hangs one guest every PROBE_PERIOD_S and resumes it a second later:
each probe's latency is hang -> ``fault.raised`` at the listener.
The victim is the node holding the compute agent's connections: first it is
killed -9 (and started again), then it is stopped with SIGSTOP for HUNG_S (and
continued). Target: no probe delayed by more than 2 s over the quiet median;
nothing lost, nothing doubled. Last, the controller is killed -9 and started
again: its stream fanout consumer replays the peer-sync stream's last chunk
(its own previous incarnation's casts among them), which must not bring back
a fault that ended (``stale_faults_after_restart``) nor clear one twice.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import statistics
import subprocess
import threading
import time
import uuid
from typing import Any, Optional

from ha_guest.testing.chaos_checks import duplicates
from ha_guest.testing.chaos_rig import CLEARED, CLUSTER_RABBIT_OPTIONS, RAISED, ChaosError, Rig, running

PROBE_PERIOD_S = 0.5
#: The issue's target: a killed or hung node delays reports by at most this.
DELAY_TARGET_S = 2.0
HUNG_S = 20.0
AFTER_S = 10.0
GUESTS = 80
#: The compute agent's state reports: a stale fault in a controller's registry is cleared by the next one.
REPORT_INTERVAL_S = 2  # an IntOpt


class Cluster:
    """tools/rabbitmq-cluster.sh from Python: start, a fresh vhost, the nodes' pids and ports."""

    def __init__(self, script: str) -> None:
        if not os.path.exists(script):
            raise ChaosError('%s not found (run the drills from the source tree or pass --cluster-script)' % script)
        self.script = script

    def run(self, *args: str, timeout: float = 180.0) -> str:
        proc = subprocess.run(['bash', self.script, *args], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ChaosError('%s %s failed: %s%s' % (self.script, ' '.join(args), proc.stdout, proc.stderr))
        return proc.stdout.strip()

    def vhost_url(self, vhost: str, nodes: tuple[int, ...] = (1, 2, 3)) -> str:
        """The URL of ``vhost`` on ``nodes`` (in that order)."""
        url = self.run('vhost', vhost)
        hosts = url.split('//', 1)[1].rsplit('/', 1)[0].split(',')
        return 'rabbit://%s/%s' % (','.join(hosts[n - 1] for n in nodes), vhost)

    def leader(self, vhost: str, queue: str, ask: int) -> Optional[int]:
        """The node (1-3) leading ``queue`` of ``vhost``, as node ``ask`` sees it."""
        for line in self.run('queues', vhost, str(ask)).splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[0] == queue:
                match = re.match(r'rmq([1-3])@', fields[2])
                return int(match.group(1)) if match else None
        return None

    def pid(self, node: int) -> int:
        return int(self.run('pid', str(node)))

    @staticmethod
    def node_of(pid: int) -> Optional[int]:
        """The cluster node (1-3) most of a process's AMQP connections go to."""
        out = subprocess.run(['ss', '-tnpH', 'state', 'established'], capture_output=True, text=True).stdout
        ports: collections.Counter[int] = collections.Counter()
        for line in out.splitlines():
            if 'pid=%d,' % pid in line:
                match = re.search(r'127\.0\.0\.1:57(0[1-3])\s', line.split()[3] + ' ')
                if match:
                    ports[int(match.group(1))] += 1
        return ports.most_common(1)[0][0] if ports else None


class Prober(threading.Thread):
    """Hangs one guest every PROBE_PERIOD_S, resumes it a second later; records (hang time, instance)."""

    def __init__(self, rig: Rig, pool: list[str]) -> None:
        super().__init__(name='prober', daemon=True)
        self.rig = rig
        self.pool = pool
        self.probes: list[tuple[float, str]] = []
        self.done = threading.Event()

    def run(self) -> None:
        pending: collections.deque[tuple[float, str]] = collections.deque()
        index = 0
        while not self.done.is_set():
            instance = self.pool[index % len(self.pool)]
            index += 1
            at = self.rig.hang([instance])[instance]
            self.probes.append((at, instance))
            pending.append((time.monotonic() + 1.0, instance))
            while pending and pending[0][0] <= time.monotonic():
                self.rig.resume([pending.popleft()[1]])
            self.done.wait(PROBE_PERIOD_S)
        # Each probe stays hung its full second, the last ones too: resumed at once, a guest hung just
        # before the stop answered again before a miss could be counted, and counted as a lost fault.
        if pending:
            time.sleep(max(0.0, pending[-1][0] - time.monotonic()))
        self.rig.resume([instance for _, instance in pending])

    def latencies(self) -> list[tuple[float, Optional[float]]]:
        """(hang time, seconds to its fault.raised or None) of every probe."""
        raised = sorted(self.rig.events(RAISED), key=lambda item: item[0])
        result = []
        for at, instance in self.probes:
            arrival = next((t for t, p in raised if t >= at and p.get('instance_uuid') == instance), None)
            result.append((at, None if arrival is None else arrival - at))
        return result


def _trace_lost(drill: Any, rig: Rig, instance: str, at: float) -> None:
    """Log what every service's log says of a lost probe's instance: which hop lost its fault."""
    drill.log('probe at %.1f s lost: instance %s; what the logs say of it:' % (at, instance))
    for name in sorted(os.listdir(rig.tmp)):
        if not name.endswith('.log'):
            continue
        try:
            with open(os.path.join(rig.tmp, name), encoding='utf-8', errors='replace') as handle:
                lines = [line.rstrip() for line in handle if instance in line]
        except OSError as exc:
            lines = ['(unreadable: %s)' % exc]
        for line in lines[-6:]:
            drill.log('  %s: %s' % (name, line[:300]))


def _window(latencies: list[tuple[float, Optional[float]]], start: float, end: float) -> list[Optional[float]]:
    return [lat for at, lat in latencies if start <= at < end]


def run(drill: Any) -> None:
    """Kill -9, then SIGSTOP, the node the compute agent uses; measure the probes' delay."""
    verdict = drill.verdict
    cluster = Cluster(drill.args.cluster_script)
    t0 = time.monotonic()
    cluster.run('start')
    verdict.figures['cluster_start_s'] = round(time.monotonic() - t0, 1)
    vhost = 'chaos_%s' % uuid.uuid4().hex[:8]
    url, observer = cluster.vhost_url(vhost), cluster.vhost_url(vhost, (3,))
    try:
        _drill(drill, cluster, vhost, url, observer)
    finally:
        cluster.run('drop-vhost', vhost)


def _drill(drill: Any, cluster: Cluster, vhost: str, url: str, observer: str) -> None:
    verdict = drill.verdict
    with running(drill, 'cluster', url=url, rabbit=CLUSTER_RABBIT_OPTIONS, listen_url=observer) as rig:
        guests = rig.start_guests(GUESTS)
        rig.start_controller()
        compute = rig.start_compute(compute={'state_report_interval_s': REPORT_INTERVAL_S})
        time.sleep(2.0)
        prober = Prober(rig, guests)
        prober.start()
        marks: dict[str, float] = {}
        try:
            time.sleep(5.0)
            victim = cluster.node_of(compute.pid) or 1
            verdict.figures['kill_victim_node'] = victim
            marks['kill'] = time.time()
            os.kill(cluster.pid(victim), signal.SIGKILL)
            drill.log('node %d killed -9' % victim)
            time.sleep(AFTER_S)
            cluster.run('start')  # the killed node comes back and rejoins
            marks['restarted'] = time.time()
            time.sleep(5.0)
            victim = cluster.node_of(compute.pid) or 1
            if victim == 3:  # the first listener's node: listen on another one too
                rig.listen_on(cluster.vhost_url(vhost, (1 if victim != 1 else 2,)))
                time.sleep(1.0)
            verdict.figures['sigstop_victim_node'] = victim
            verdict.figures['sigstop_controller_node'] = cluster.node_of(rig.services['controller'].pid)
            # A quorum queue led by the stopped node takes nothing until Erlang declares the node down.
            verdict.figures['sigstop_controller_queue_leader'] = cluster.leader(
                vhost, rig.groups['rpc']['controller_topic'], 3 if victim != 3 else 1)
            pid = cluster.pid(victim)
            marks['sigstop'] = time.time()
            os.kill(pid, signal.SIGSTOP)
            drill.log('node %d stopped (SIGSTOP) for %.0f s' % (victim, HUNG_S))
            try:
                time.sleep(HUNG_S)
            finally:
                os.kill(pid, signal.SIGCONT)
            marks['sigcont'] = time.time()
            time.sleep(AFTER_S)
        finally:
            prober.done.set()
            prober.join(10.0)
        time.sleep(3.0)
        _figures(drill, rig, prober, marks, guests)
        _replay(drill, rig, guests)


def _replay(drill: Any, rig: Rig, guests: list[str]) -> None:
    """A controller started again replays the peer-sync stream: no stale fault, no second clear."""
    rig.resume(guests)
    time.sleep(2 * REPORT_INTERVAL_S)
    active = len(rig.list_faults())
    drill.verdict.equal('active_faults_before_restart', active, 0)
    rig.kill9('controller')
    rig.start_controller()
    time.sleep(3.0)
    drill.verdict.equal('stale_faults_after_restart', len(rig.list_faults()), 0)
    time.sleep(2 * REPORT_INTERVAL_S)  # a stale fault would be cleared (again) by the next state report
    cleared = [(t, p) for t, p in rig.events(CLEARED) if p.get('instance_uuid') in guests]
    drill.verdict.equal('duplicate_cleared', sum(n - 1 for n in duplicates(cleared, 'incident_id').values()), 0)


def _figures(drill: Any, rig: Rig, prober: Prober, marks: dict[str, float], guests: list[str]) -> None:
    verdict = drill.verdict
    latencies = prober.latencies()
    quiet = [lat for lat in _window(latencies, 0.0, marks['kill']) if lat is not None]
    base = statistics.median(quiet) if quiet else 0.0
    verdict.figures['probes'] = len(latencies)
    verdict.figures['quiet_median_s'] = round(base, 3)
    # Every probe (seconds since the first, latency) and the moments, to see what a delay lined up with.
    first = latencies[0][0] if latencies else 0.0
    verdict.figures['moments_s'] = {name: round(at - first, 1) for name, at in marks.items()}
    verdict.figures['probe_latencies_s'] = [[round(at - first, 1), None if lat is None else round(lat, 2)]
                                            for at, lat in latencies]
    for name, start, end in (('kill', marks['kill'] - 1.0, marks['restarted']),
                             ('sigstop', marks.get('sigstop', 0.0) - 1.0, marks.get('sigcont', 0.0) + AFTER_S)):
        window = _window(latencies, start, end)
        lost = sum(lat is None for lat in window)
        for (at, instance), (_, lat) in zip(prober.probes, latencies, strict=True):
            if start <= at < end and lat is None:
                _trace_lost(drill, rig, instance, at - first)
        worst = max((lat for lat in window if lat is not None), default=None)
        verdict.equal('%s_probes_lost' % name, lost, 0)
        verdict.figures['%s_probes' % name] = len(window)
        verdict.at_most('%s_max_delay_s' % name, None if worst is None else round(worst - base, 2),
                        DELAY_TARGET_S, ' s')
    raised = [(t, p) for t, p in rig.events(RAISED) if p.get('instance_uuid') in guests]
    # A probe guest hangs again every len(guests) probes: count doubles per incident id, not per guest.
    verdict.equal('duplicate_raised', sum(n - 1 for n in duplicates(raised, 'incident_id').values()), 0)
