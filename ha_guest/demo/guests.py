"""The demo's guests: real ha-guest-agent processes on channels of the hypervisor channel emulator."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from typing import Optional

from ha_guest.emulator import EmulatorThread

AGENT_MODULE = 'ha_guest.guest.agent'
CLI_MODULE = 'ha_guest.guest.cli'
#: Bound of a client command and of an agent's exit after SIGTERM.
COMMAND_TIMEOUT_S = 10.0


@dataclasses.dataclass
class Guest:
    """One instance: its channel and the agent process inside it."""

    name: str
    instance_uuid: str
    api_socket: str
    log_path: str
    proc: Optional[subprocess.Popen[bytes]] = None


class Guests:
    """Owns the channel emulator (it stands in for QEMU) and every agent process."""

    def __init__(self, tmp: str, interval_ms: int, prefix: str = '') -> None:
        """``prefix``: of the folders, for a second compute node's guests in the same ``tmp``."""
        self.tmp = tmp
        self.interval_ms = interval_ms
        self.channel_dir = os.path.join(tmp, prefix + 'channels')  # QEMU's side: the compute agent watches it
        self.emulator = EmulatorThread(self.channel_dir, os.path.join(tmp, prefix + 'guest-ports'))
        self.guests: dict[str, Guest] = {}

    def start(self) -> None:
        """Start the emulator's thread."""
        os.makedirs(self.channel_dir, exist_ok=True)
        self.emulator.start()

    def add(self, name: str, instance_uuid: str, features: Optional[dict[str, bool]] = None) -> Guest:
        """Create the instance's channel (``<uuid>.sock`` appears in channel_dir) and start its agent.

        ``features`` (e.g. {"heartbeat": True, "server_group_messaging": True}) is what the flavor enabled;
        the directory discovery reads it from ``<uuid>.features`` as libvirt's reads the domain XML.
        """
        if features is not None:
            temporary = os.path.join(self.channel_dir, '.%s.features' % instance_uuid)
            with open(temporary, 'w', encoding='utf-8') as handle:
                json.dump(features, handle)
            os.rename(temporary, os.path.join(self.channel_dir, '%s.features' % instance_uuid))
        _, guest_socket = self.emulator.add(instance_uuid)
        guest = Guest(name, instance_uuid, os.path.join(self.tmp, '%s-api.sock' % name),
                      os.path.join(self.tmp, '%s.log' % name))
        with open(guest.log_path, 'wb') as log:
            guest.proc = subprocess.Popen(
                [sys.executable, '-m', AGENT_MODULE, '--device', guest_socket, '--api-socket', guest.api_socket,
                 '--interval-ms', str(self.interval_ms), '--log-level', 'INFO'],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.guests[name] = guest
        return guest

    def signal(self, name: str, signum: int) -> None:
        """Send a signal to a guest's agent."""
        proc = self.guests[name].proc
        assert proc is not None
        proc.send_signal(signum)

    def wait_exit(self, name: str) -> int:
        """Wait for a guest's agent to end; return its exit status."""
        proc = self.guests[name].proc
        assert proc is not None
        return proc.wait(COMMAND_TIMEOUT_S)

    def client(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ha-guest-client against a guest's agent (as an application inside the guest would)."""
        return subprocess.run([sys.executable, '-m', CLI_MODULE, '--socket', self.guests[name].api_socket, *args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)

    def log_tail(self, lines: int = 12) -> str:
        """Return the last lines of every agent's log (for a failure report)."""
        parts = []
        for guest in self.guests.values():
            try:
                with open(guest.log_path, encoding='utf-8', errors='replace') as handle:
                    tail = handle.read().splitlines()[-lines:]
            except OSError:
                continue
            parts.append('--- %s (%s) agent log, last lines ---\n%s' % (guest.name, guest.instance_uuid,
                                                                         '\n'.join(tail)))
        return '\n'.join(parts)

    def stop(self) -> None:
        """Kill every agent still running (continued first, in case it is stopped), then the emulator."""
        for guest in self.guests.values():
            proc = guest.proc
            if proc is None:
                continue
            if proc.poll() is None:
                for signum in (signal.SIGCONT, signal.SIGKILL):
                    try:
                        os.killpg(proc.pid, signum)
                    except ProcessLookupError:
                        break
            try:
                proc.wait(COMMAND_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        try:
            self.emulator.stop()
        except Exception:  # noqa: BLE001 - cleanup goes on
            pass
