"""ha-guest-demo: three guests heartbeating through emulated channels, with a hang and an app fault.

Everything runs on this machine: the hypervisor channel emulator stands in for
QEMU, three real ha-guest-agent processes play the guests, and the scripted
host (ha_guest.testing, not the compute agent) monitors them with a miss
threshold of 1. Guest 2 is frozen with SIGSTOP (a hung guest), guest 3
reports itself unhealthy through ha-guest-client; both recover; SIGTERM ends
every agent with an exit frame. The timeline is printed as it happens.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from ha_guest.emulator import EmulatorThread
from ha_guest.testing import EventLog, ScriptedHost
from ha_guest.testing import events as ev

INSTANCES = (
    ('guest-1', '6f1c2a0e-1b7d-4e52-9a51-0c3f5e7d9a01'),
    ('guest-2', 'a83d5b92-4c1e-4f07-8b6a-2d9e1f4c7b02'),
    ('guest-3', 'c5e7f104-9d2a-4b38-a6c1-7e0b3d5f8c03'),
)
INTERVAL_MS = 100
#: Bound of every wait for an expected event.
WAIT_S = 5.0
FLOW_S = 2.0
APP_REASON = 'database connection lost'


class DemoFailed(Exception):
    """An expected event did not arrive in time."""


class Demo:
    """Owns every process, thread and temporary file of one demo run."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.tmp = tempfile.mkdtemp(prefix='ha-guest-demo-')
        self.log = EventLog()
        self.emulator = EmulatorThread(os.path.join(self.tmp, 'host'), os.path.join(self.tmp, 'guest'))
        self.hosts: dict[str, ScriptedHost] = {}
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.api: dict[str, str] = {}

    # -- output ---------------------------------------------------------------------------------

    def say(self, text: str, t: float | None = None) -> None:
        """Print one timeline line stamped with ms since the start (or since ``t``)."""
        ms = ((time.monotonic() if t is None else t) - self.start) * 1000.0
        print('[%6.0f ms] %s' % (ms, text), flush=True)

    def wait(self, kind: str, name: str, since: int, what: str) -> ev.Event:
        """Wait for an event or raise DemoFailed saying what was expected."""
        try:
            return self.log.wait_for(kind, name, since, WAIT_S)
        except AssertionError:
            raise DemoFailed('%s: expected %s within %g s' % (name, what, WAIT_S)) from None

    # -- steps ----------------------------------------------------------------------------------

    def setup(self) -> None:
        self.emulator.start()
        self.say('channel emulator up in %s (stands in for QEMU)' % self.tmp)
        for name, instance in INSTANCES:
            host_sock, _ = self.emulator.add(instance)
            host = ScriptedHost(name, log=self.log, miss_threshold=1)
            self.hosts[name] = host
            host.connect(host_sock)
        self.say('scripted host connected to 3 channels, miss threshold 1')
        mark = self.log.mark()
        for name, instance in INSTANCES:
            self.agents[name] = self._start_agent(name, instance)
        self.say('started 3 ha-guest-agent processes (interval %d ms): %s' % (
            INTERVAL_MS, ', '.join('%s pid %d' % (n, p.pid) for n, p in self.agents.items())))
        registered = sorted((self.wait(ev.REGISTERED, name, mark, 'registration') for name, _ in INSTANCES),
                            key=lambda e: e.t)
        for event in registered:
            self.say('%s (%s) registered: interval %d ms, session %s' % (
                event.host, dict(INSTANCES)[event.host], event.data['interval_ms'], event.session), event.t)

    def _start_agent(self, name: str, instance: str) -> subprocess.Popen[bytes]:
        guest_sock = self.emulator.emulator.guest_socket_path(instance)
        self.api[name] = os.path.join(self.tmp, '%s-api.sock' % name)
        log = open(os.path.join(self.tmp, '%s.log' % name), 'wb')
        with log:
            return subprocess.Popen(
                [sys.executable, '-m', 'ha_guest.guest.agent', '--device', guest_sock, '--api-socket',
                 self.api[name], '--interval-ms', str(INTERVAL_MS), '--log-level', 'INFO'],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def heartbeats(self) -> None:
        begin = time.monotonic()
        time.sleep(FLOW_S)
        self.say('heartbeats flowing for %.0f s:' % FLOW_S)
        for name in self.hosts:
            done = [c for c in self.log.challenges(name) if c.sent_at >= begin and c.answered_at is not None]
            healthy = [c for c in done if c.on_time and c.health == 'healthy']
            worst = max((c.reply_ms or 0.0 for c in done), default=0.0)
            print('             %s: %d challenges, %d healthy answers, max reply %.1f ms'
                  % (name, len(done), len(healthy), worst))
            if not healthy:
                raise DemoFailed('%s: no healthy answers while heartbeats should flow' % name)

    def hang(self) -> None:
        mark = self.log.mark()
        stopped = time.monotonic()
        os.kill(self.agents['guest-2'].pid, signal.SIGSTOP)
        self.say('guest-2: agent frozen with SIGSTOP (a hung guest)', stopped)
        missed = self.wait(ev.MISSED, 'guest-2', mark, 'a missed challenge')
        self.say('guest-2: MISSED challenge %s -> fault (detected %.0f ms after SIGSTOP)' % (
            missed.data['nonce'], (missed.t - stopped) * 1000.0), missed.t)

    def app_fault(self) -> None:
        mark = self.log.mark()
        self.say('guest-3: ha-guest-client report unhealthy --source app --reason %r' % APP_REASON)
        self.client('guest-3', 'report', 'unhealthy', '--source', 'app', '--reason', APP_REASON)
        event = self.wait(ev.UNHEALTHY, 'guest-3', mark, 'an unhealthy answer')
        self.say('guest-3: UNHEALTHY: %s' % event.data['reason'], event.t)

    def recover(self) -> None:
        mark = self.log.mark()
        resumed = time.monotonic()
        os.kill(self.agents['guest-2'].pid, signal.SIGCONT)
        misses = len(self.log.events(ev.MISSED, 'guest-2'))
        self.say('guest-2: SIGCONT after %d missed challenges in a row' % misses, resumed)
        event = self.wait(ev.HEALTHY, 'guest-2', mark, 'a healthy answer after SIGCONT')
        self.say('guest-2: healthy again (%.0f ms after SIGCONT)' % ((event.t - resumed) * 1000.0), event.t)
        mark = self.log.mark()
        self.say('guest-3: ha-guest-client report healthy --source app')
        self.client('guest-3', 'report', 'healthy', '--source', 'app')
        event = self.wait(ev.HEALTHY, 'guest-3', mark, 'a healthy answer after the report')
        self.say('guest-3: healthy again', event.t)

    def stop_agents(self) -> None:
        mark = self.log.mark()
        self.say('SIGTERM to every agent')
        for proc in self.agents.values():
            proc.send_signal(signal.SIGTERM)
        exits = []
        for name, proc in self.agents.items():
            event = self.wait(ev.EXITED, name, mark, 'an exit frame')
            try:
                code = proc.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                raise DemoFailed('%s: agent did not exit within %g s of SIGTERM' % (name, WAIT_S)) from None
            if code != 0:
                raise DemoFailed('%s: agent exited with %d' % (name, code))
            exits.append(event)
        for event in sorted(exits, key=lambda e: e.t):
            self.say('%s: EXIT %r, exit code 0' % (event.host, event.data['reason']), event.t)

    def summary(self) -> None:
        print('\nsummary:')
        for name, instance in INSTANCES:
            records = self.log.challenges(name)
            on_time = sum(1 for c in records if c.on_time)
            unhealthy = sum(1 for c in records if c.on_time and c.health == 'unhealthy')
            missed = sum(1 for c in records if c.missed)
            print('  %s %s: %d challenges, %d answered in time (%d unhealthy), %d missed, %d exit' % (
                name, instance, len(records), on_time, unhealthy, missed, len(self.log.events(ev.EXITED, name))))
        print('demo finished in %.1f s: hang detected, app fault reported, both recovered, clean exits'
              % (time.monotonic() - self.start))

    def client(self, name: str, *args: str) -> None:
        """Run ha-guest-client against one guest's agent."""
        proc = subprocess.run([sys.executable, '-m', 'ha_guest.guest.cli', '--socket', self.api[name], *args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=WAIT_S)
        if proc.returncode != 0:
            raise DemoFailed('%s: ha-guest-client %s exited %d: %s' % (name, ' '.join(args), proc.returncode,
                                                                       proc.stderr.strip()))

    def agent_logs(self) -> str:
        """Return the tail of every agent's log, for a failure report."""
        parts = []
        for name in self.agents:
            try:
                with open(os.path.join(self.tmp, '%s.log' % name), encoding='utf-8', errors='replace') as handle:
                    tail = handle.read().splitlines()[-15:]
            except OSError:
                continue
            parts.append('--- %s log (last lines) ---\n%s' % (name, '\n'.join(tail)))
        return '\n'.join(parts)

    def cleanup(self) -> None:
        """Stop everything this run started; safe after any failure."""
        for proc in self.agents.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                pass
        for host in self.hosts.values():
            try:
                host.close()
            except Exception:  # noqa: BLE001 - cleanup goes on regardless
                pass
        try:
            self.emulator.stop()
        except Exception:  # noqa: BLE001
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return 0 when every expected event arrived in time."""
    parser = argparse.ArgumentParser(prog='ha-guest-demo', description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    demo = Demo()
    try:
        demo.setup()
        demo.heartbeats()
        demo.hang()
        demo.app_fault()
        demo.recover()
        demo.stop_agents()
        demo.summary()
        return 0
    except DemoFailed as exc:
        print('\ndemo FAILED: %s' % exc, file=sys.stderr)
        print(demo.agent_logs(), file=sys.stderr)
        return 1
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        print('\ndemo FAILED: %s' % exc, file=sys.stderr)
        print(demo.agent_logs(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('\ninterrupted; cleaning up', file=sys.stderr)
        return 130
    finally:
        demo.cleanup()


if __name__ == '__main__':
    sys.exit(main())
