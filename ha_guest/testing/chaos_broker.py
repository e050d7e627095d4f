"""Chaos drill ``broker_outage``: the broker goes away for ~7 s while guests hang.

A RabbitMQ node of the drill's own (so nobody else loses the shared one) is
stopped (``stop_app``: every connection drops, the port closes) for
``OUTAGE_S``; guests hang during the outage. Targets: every fault made during
it reaches the controller <= 1.5 s after the broker is back; the compute agent
never stopped heartbeating its healthy guests meanwhile; nothing doubled, no
false alarm.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from typing import Any

from ha_guest.testing.chaos_checks import duplicates, wait_events
from ha_guest.testing.chaos_rig import CLEARED, RAISED, ChaosError, running

OUTAGE_S = 7.0
#: The issue's target: faults made during the outage arrive at most this long after the broker returns.
AFTER_RETURN_TARGET_S = 1.5
GUESTS = 50
HANGS = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1.0):
            return True
    except OSError:
        return False


class PrivateNode:
    """A detached rabbitmq-server node on free ports, which the drill may stop and start."""

    def __init__(self) -> None:
        server = shutil.which('rabbitmq-server')
        if server is None or shutil.which('rabbitmqctl') is None or os.geteuid() != 0:
            raise ChaosError('a private RabbitMQ node needs rabbitmq-server installed and root '
                             '(tools/ensure-rabbitmq.sh installs it)')
        self.node = 'hachaos-%s@localhost' % uuid.uuid4().hex[:8]
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix='ha-guest-chaos-rabbit-')
        for sub in ('mnesia', 'log'):
            os.mkdir(os.path.join(self.dir, sub))
        with open(os.path.join(self.dir, 'enabled_plugins'), 'w', encoding='ascii') as handle:
            handle.write('[].\n')  # no management plugin: its port would clash with the shared node's
        subprocess.run(['chown', '-R', 'rabbitmq:rabbitmq', self.dir], check=True)
        os.chmod(self.dir, 0o755)
        self.env = dict(os.environ, RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_PORT=str(self.port),
                        RABBITMQ_DIST_PORT=str(_free_port()),
                        RABBITMQ_MNESIA_BASE=os.path.join(self.dir, 'mnesia'),
                        RABBITMQ_LOG_BASE=os.path.join(self.dir, 'log'),
                        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, 'enabled_plugins'),
                        RABBITMQ_PID_FILE=os.path.join(self.dir, 'pid'))
        subprocess.run([server, '-detached'], env=self.env, check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        self._wait(True, 60.0)
        self.url = 'rabbit://guest:guest@127.0.0.1:%d/' % self.port

    def stop_app(self) -> None:
        self._ctl('stop_app')
        self._wait(False, 30.0)

    def start_app(self) -> None:
        """Start the broker application again; return once its port answers."""
        self._ctl('start_app')
        self._wait(True, 30.0)

    def _ctl(self, *args: str) -> None:
        proc = subprocess.run(['rabbitmqctl', '-n', self.node, *args], env=self.env, capture_output=True,
                              text=True, timeout=60)
        if proc.returncode != 0:
            raise ChaosError('rabbitmqctl %s failed: %s %s' % (' '.join(args), proc.stdout, proc.stderr))

    def _wait(self, up: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while _port_open(self.port) != up:
            if time.monotonic() > deadline:
                raise ChaosError('RabbitMQ node %s did not %s on port %d within %.0f s; logs in %s'
                                 % (self.node, 'answer' if up else 'close', self.port, timeout, self.dir))
            time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run(['rabbitmqctl', '-n', self.node, 'stop'], env=self.env, capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_outage(drill: Any) -> None:
    """Stop the drill's own broker for OUTAGE_S; hang guests during it; measure the return."""
    node = PrivateNode()
    verdict = drill.verdict
    try:
        with running(drill, 'outage', url=node.url) as rig:
            guests = rig.start_guests(GUESTS)
            rig.start_controller()
            rig.start_compute()
            time.sleep(1.0)
            sample, healthy = guests[:HANGS], guests[HANGS:]
            answered0 = rig.answered()
            since = time.time()
            node.stop_app()
            down_at = time.monotonic()
            drill.log('broker down')
            time.sleep(2.0)
            hung = rig.hang(sample)
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            answered_during = rig.answered() - answered0
            node.start_app()
            back = time.time()
            outage = time.monotonic() - down_at
            drill.log('broker back after %.1f s' % outage)
            found = wait_events(rig, RAISED, sample, since, 30.0)
            after = [t - back for t, _ in found.values()]
            verdict.figures['outage_s'] = round(outage, 1)
            verdict.equal('lost', len(sample) - len(found), 0)
            verdict.at_most('faults_after_return_max_s', round(max(after), 2) if after else None,
                            AFTER_RETURN_TARGET_S, ' s')
            verdict.figures['faults_after_return_min_s'] = round(min(after), 2) if after else None
            verdict.figures['detected_during_outage'] = sum(p['detected_at'] < back for _, p in found.values())
            # Every healthy guest answers every 100 ms challenge; a pause would show as a shortfall.
            expected = len(healthy) * outage / 0.1
            verdict.figures['heartbeats_answered_during_outage'] = answered_during
            verdict.expect(answered_during >= 0.8 * expected,
                           'heartbeats stopped during the outage: %d answers, about %d expected'
                           % (answered_during, expected))
            resumed_since = time.time()
            rig.resume(sample)
            cleared = wait_events(rig, CLEARED, sample, resumed_since, 15.0)
            verdict.equal('not_cleared', len(sample) - len(cleared), 0)
            time.sleep(1.0)
            raised = [(t, p) for t, p in rig.events(RAISED) if t >= since]
            verdict.equal('duplicate_raised', sum(n - 1 for n in duplicates(raised, 'incident_id').values()), 0)
            verdict.equal('hung_with_several_incidents', len(duplicates(raised)), 0)
            verdict.equal('false_alarms', len([p for _, p in raised if p.get('instance_uuid') not in hung]), 0)
    finally:
        node.stop()
