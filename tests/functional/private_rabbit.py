"""A RabbitMQ node of a test's own, which the test may stop and start without disturbing anyone else.

The shared broker on 5672 serves every functional test running at the same
time; a test that takes its broker down needs one of its own: a second
node of the installed rabbitmq-server (own name, ports and data folder),
started detached and stopped at cleanup. Needs rabbitmq-server installed and
root (tools/ensure-rabbitmq.sh installs it); fails with a clear message, never
skips, without them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import fixtures

#: Starting a node takes 5-10 s on the test machines.
START_TIMEOUT = 60.0


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


class PrivateRabbit(fixtures.Fixture):
    """A detached rabbitmq-server node on free ports; ``stop_app``/``start_app`` take it down and up."""

    def _setUp(self) -> None:
        server = shutil.which('rabbitmq-server')
        if server is None or shutil.which('rabbitmqctl') is None:
            raise AssertionError('rabbitmq-server is not installed: run tools/ensure-rabbitmq.sh (as root)')
        if os.geteuid() != 0:
            raise AssertionError('a private RabbitMQ node needs root (rabbitmq-server runs as user rabbitmq)')
        self.node = 'hachain-%s@localhost' % uuid.uuid4().hex[:8]
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix='ha-guest-rabbit-')
        self.addCleanup(shutil.rmtree, self.dir, True)
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
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=START_TIMEOUT)
        self.addCleanup(self._stop_node)
        self._wait(True, START_TIMEOUT)
        self.url = 'rabbit://guest:guest@127.0.0.1:%d/' % self.port

    def stop_app(self) -> None:
        """Stop the broker application: every connection drops, the port closes."""
        self._ctl('stop_app')
        self._wait(False, 30.0)

    def start_app(self) -> None:
        """Start the broker application again."""
        self._ctl('start_app')
        self._wait(True, 30.0)

    def _ctl(self, *args: str) -> None:
        proc = subprocess.run(['rabbitmqctl', '-n', self.node, *args], env=self.env, capture_output=True,
                              text=True, timeout=60)
        if proc.returncode != 0:
            raise AssertionError('rabbitmqctl %s failed: %s %s' % (' '.join(args), proc.stdout, proc.stderr))

    def _wait(self, up: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while _port_open(self.port) != up:
            if time.monotonic() > deadline:
                raise AssertionError('RabbitMQ node %s did not %s on port %d within %.0f s; logs in %s'
                                     % (self.node, 'answer' if up else 'close', self.port, timeout, self.dir))
            time.sleep(0.2)

    def _stop_node(self) -> None:
        subprocess.run(['rabbitmqctl', '-n', self.node, 'stop'], env=self.env, capture_output=True, timeout=60)
