"""Fixtures of the guest agent's functional tests: emulator, real agent processes, scripted host."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import fixtures
import testtools
from testtools import content

from ha_guest.emulator import EmulatorThread
from ha_guest.testing import ScriptedHost

#: Bound of any single wait; a healthy run needs a fraction of it.
TIMEOUT = 10.0
#: Heartbeat interval the agents ask for.
INTERVAL_MS = 100
AGENT_MODULE = 'ha_guest.guest.agent'
CLI_MODULE = 'ha_guest.guest.cli'
_TICKS = os.sysconf('SC_CLK_TCK')


def require_module(name: str) -> None:
    """Fail (never skip) with a clear message when a module under test is missing."""
    if importlib.util.find_spec(name) is None:
        raise AssertionError('%s is missing: the functional tests need the real module (not installed or not '
                             'written yet?)' % name)


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds a process has used, from /proc/<pid>/stat."""
    with open('/proc/%d/stat' % pid, encoding='ascii') as handle:
        stat = handle.read()
    # The command name is in parentheses and may contain spaces: split after it.
    fields = stat[stat.rindex(')') + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclasses.dataclass
class Agent:
    """A running ha-guest-agent process."""

    name: str
    proc: subprocess.Popen[bytes]
    device: str
    api_socket: str
    log_path: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        """Return what the agent wrote to stderr so far."""
        with open(self.log_path, encoding='utf-8', errors='replace') as handle:
            return handle.read()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Wait for the process to end; return its exit status."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('agent %s (pid %d) did not exit within %.0fs'
                                 % (self.name, self.pid, timeout)) from None


class FunctionalTestCase(testtools.TestCase):
    """One emulator channel, any number of real agent processes and scripted hosts per test."""

    def setUp(self) -> None:
        super().setUp()
        require_module(AGENT_MODULE)
        require_module(CLI_MODULE)
        self.useFixture(fixtures.Timeout(120, gentle=True))
        # mkdtemp under /tmp keeps socket paths well below the 107-byte limit.
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.emulator = EmulatorThread(os.path.join(self.tmp, 'h'), os.path.join(self.tmp, 'g'), timeout=TIMEOUT)
        self.emulator.start()
        self.addCleanup(self.emulator.stop)
        self._agents = 0

    def add_channel(self, instance: str | None = None) -> tuple[str, str]:
        """Create an emulated channel; return (host socket, guest socket)."""
        return self.emulator.add(instance or str(uuid.uuid4()))

    def start_agent(self, device: str, *, interval_ms: int = INTERVAL_MS, checks: dict[str, str] | None = None,
                    extra: Sequence[str] = (), name: str | None = None) -> Agent:
        """Start a real ha-guest-agent on ``device``; it is killed and its log attached at cleanup."""
        self._agents += 1
        name = name or 'agent-%d' % self._agents
        api_socket = os.path.join(self.tmp, '%s.sock' % name)
        log_path = os.path.join(self.tmp, '%s.log' % name)
        argv = [sys.executable, '-m', AGENT_MODULE, '--device', device, '--api-socket', api_socket,
                '--interval-ms', str(interval_ms), '--log-level', 'DEBUG']
        for check, command in (checks or {}).items():
            argv += ['--check', '%s=%s' % (check, command)]
        argv += list(extra)
        with open(log_path, 'wb') as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        agent = Agent(name, proc, device, api_socket, log_path)
        # Cleanups run last-in first-out: the log is attached before the temp dir goes.
        self.addCleanup(self._attach_log, agent)
        self.addCleanup(self._kill, agent)
        return agent

    def start_host(self, host_socket: str, *, connect: bool = True, **kwargs: Any) -> ScriptedHost:
        """Create a scripted host (connected unless told otherwise); closed at cleanup."""
        host = ScriptedHost(**kwargs)
        self.addCleanup(self._attach_events, host)
        self.addCleanup(host.close)
        if connect:
            host.connect(host_socket, timeout=TIMEOUT)
        return host

    def run_client(self, agent: Agent, *args: str, check: bool = True,
                   timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run the real ha-guest-client CLI against an agent and return the finished process."""
        argv = [sys.executable, '-m', CLI_MODULE, '--socket', agent.api_socket, *args]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            self.fail('%s exited %d\nstdout: %s\nstderr: %s' % (' '.join(args), proc.returncode, proc.stdout,
                                                                 proc.stderr))
        return proc

    def start_client(self, agent: Agent, *args: str) -> subprocess.Popen[str]:
        """Start a long-running ha-guest-client (e.g. listen); killed at cleanup."""
        argv = [sys.executable, '-m', CLI_MODULE, '--socket', agent.api_socket, *args]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

        def stop() -> None:
            if proc.poll() is None:
                proc.kill()
            out, err = proc.communicate(timeout=TIMEOUT)
            self.addDetail('client-%d' % proc.pid, content.text_content('stdout:\n%s\nstderr:\n%s' % (out, err)))

        self.addCleanup(stop)
        return proc

    def wait_registered(self, host: ScriptedHost, since: int = 0, timeout: float = TIMEOUT) -> Any:
        """Wait until the agent registers with the host in the host's current session."""
        return host.wait_for('registered', since=since, timeout=timeout, where=lambda e: e.session == host.session)

    def _kill(self, agent: Agent) -> None:
        if agent.proc.poll() is None:
            try:
                os.killpg(agent.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            agent.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            pass

    def _attach_log(self, agent: Agent) -> None:
        try:
            text = agent.log()
        except OSError as exc:
            text = 'no log: %s' % exc
        status = agent.proc.poll()
        self.addDetail('%s-log' % agent.name, content.text_content('exit status %s\n%s' % (status, text)))

    def _attach_events(self, host: ScriptedHost) -> None:
        text = '\n'.join(str(e) for e in host.events()[-200:])
        self.addDetail('%s-events' % host.name, content.text_content(text))
