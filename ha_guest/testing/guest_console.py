"""Drive the ha_guest test image from the host through its serial console (see doc/source/guest-image.rst).

The image's init (tools/guest-image/init) reads ``ha-guest-ctl <seq> <command>``
lines on ttyS0 and answers each with ``ha-guest-ctl: ok <seq> ...`` or
``ha-guest-ctl: error <seq> ...``. A libvirt domain with ``<serial type='pty'>``
(Nova's domains have one) exposes that console as a ``/dev/pts/N`` on the host;
opening it needs root (or the pty's owner).

    with GuestConsole('instance-00000001') as console:
        console.wait_for(AGENT_REGISTERED, timeout=60)
        console.send('fail-check disk full', timeout=10)
        console.send('hang')
        console.send('exit-agent')          # returns 'pid 97 status 0'

``send`` raises ``CommandFailed`` on an error answer and ``ConsoleTimeout`` when
no answer comes in time. Output before ``open()`` is lost (QEMU drops what the
guest writes while no one has the pty open).
"""

from __future__ import annotations

import collections
import os
import re
import select
import subprocess
import threading
import time
import tty
import xml.etree.ElementTree as ElementTree
from typing import Any, Deque, List, Optional, Tuple

#: Every line the image's init writes on its own starts with this.
PREFIX = 'ha-guest-ctl:'
#: Unsolicited lines of the init, as regular expressions for ``wait_for``.
AGENT_STARTED = r'^ha-guest-ctl: agent started pid (\d+)$'
AGENT_REGISTERED = r'^ha-guest-ctl: agent registered pid (\d+)$'
#: Commands the init understands (the image's doc has what each does).
COMMANDS = frozenset(['ping', 'fail-check', 'pass-check', 'hang', 'resume', 'kill', 'stop-agent', 'exit-agent',
                      'start-agent', 'broadcast', 'client'])
#: The guest's console reads lines in canonical mode (4096 bytes at most): stay well under.
MAX_COMMAND_BYTES = 1024
#: Bounds of what is kept of the console output.
MAX_LINES = 20000
MAX_LINE_CHARS = 4096
_ANSWER = re.compile(r'^ha-guest-ctl: (ok|error) (\d+) (\S+?)(?::)?(?: (.*))?$')
_VIRSH_TIMEOUT_S = 20.0


class ConsoleError(Exception):
    """The console cannot be used."""


class ConsoleTimeout(ConsoleError):
    """No expected line within the timeout."""


class CommandFailed(ConsoleError):
    """The guest answered a command with an error."""


def _domain_xml(domain: str, uri: str) -> str:
    """The live XML of a domain: libvirt-python when importable, else ``virsh dumpxml``."""
    try:
        import libvirt  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        libvirt = None
    if libvirt is not None:
        conn = libvirt.open(uri)
        try:
            return str(conn.lookupByName(domain).XMLDesc(0))
        finally:
            conn.close()
    result = subprocess.run(['virsh', '-c', uri, 'dumpxml', domain], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=_VIRSH_TIMEOUT_S)
    if result.returncode != 0:
        raise ConsoleError('virsh dumpxml %s failed: %s' % (domain, result.stderr.strip()))
    return result.stdout


def pty_path(domain: str, uri: str = 'qemu:///system') -> str:
    """The host pty of a running domain's first ``<serial type='pty'>`` (or pty console)."""
    root = ElementTree.fromstring(_domain_xml(domain, uri))
    for tag in ('serial', 'console'):
        for device in root.findall('./devices/%s' % tag):
            source = device.find('source')
            path = (source.get('path') if source is not None else None) or device.get('tty')
            if device.get('type') == 'pty' and path:
                return path
    raise ConsoleError('domain %s has no pty serial console (is it running?)' % domain)


class GuestConsole:
    """The serial console of one running domain: commands in, lines out; thread-safe."""

    def __init__(self, domain: str, uri: str = 'qemu:///system', path: Optional[str] = None) -> None:
        self.domain = domain
        self.uri = uri
        #: The pty; found from the domain's XML at open() unless given.
        self.path = path
        self._fd: Optional[int] = None
        self._lines: Deque[Tuple[int, str]] = collections.deque(maxlen=MAX_LINES)
        self._count = 0
        self._partial = b''
        self._seq = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> GuestConsole:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> GuestConsole:
        """Open the pty in raw mode and start reading it."""
        if self.path is None:
            self.path = pty_path(self.domain, self.uri)
        fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        # Raw: no echo of the guest's output back into the guest, no line editing of ours.
        tty.setraw(fd)
        self._fd = fd
        self._stop.clear()
        self._thread = threading.Thread(target=self._read_loop, name='console-%s' % self.domain, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop reading and close the pty (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _read_loop(self) -> None:
        fd = self._fd
        assert fd is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                # EIO: QEMU went away (the domain stopped); keep what was read.
                break
            if not data:
                break
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        parts = (self._partial + data).split(b'\n')
        self._partial = parts.pop()
        if len(self._partial) > MAX_LINE_CHARS:
            parts.append(self._partial)
            self._partial = b''
        with self._cond:
            for raw in parts:
                self._count += 1
                self._lines.append((self._count, raw.decode('utf-8', 'replace').rstrip('\r')[:MAX_LINE_CHARS]))
            self._cond.notify_all()

    def mark(self) -> int:
        """A position in the output: lines after it are ``lines(since=mark)``."""
        with self._cond:
            return self._count

    def lines(self, since: int = 0) -> List[str]:
        """The console lines read so far (the latest MAX_LINES), after ``since``."""
        with self._cond:
            return [line for number, line in self._lines if number > since]

    def output(self) -> str:
        """Everything kept so far, one string (for test details)."""
        return '\n'.join(self.lines())

    def wait_for(self, pattern: str, timeout: float = 10.0, since: int = 0) -> re.Match[str]:
        """Wait for a line after ``since`` matching the regular expression; return its match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for number, line in self._lines:
                    match = regex.search(line) if number > since else None
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = '\n'.join(line for _, line in list(self._lines)[-20:])
                    raise ConsoleTimeout('no line matching %r on %s within %gs; last lines:\n%s'
                                         % (pattern, self.domain, timeout, tail))
                self._cond.wait(min(left, 0.5))

    def send(self, command: str, timeout: float = 10.0) -> str:
        """Run one command in the guest and return the detail of its ``ok`` answer (may be '')."""
        name = command.split(' ', 1)[0]
        if name not in COMMANDS:
            raise ValueError('unknown command %r (known: %s)' % (name, ', '.join(sorted(COMMANDS))))
        with self._cond:
            self._seq += 1
            seq = self._seq
            since = self._count
        line = ('ha-guest-ctl %d %s\n' % (seq, command)).encode('utf-8')
        if '\n' in command or '\r' in command or len(line) > MAX_COMMAND_BYTES:
            raise ValueError('a command is one line of at most %d bytes' % MAX_COMMAND_BYTES)
        self._write(line, timeout)
        match = self.wait_for(r'^ha-guest-ctl: (ok|error) %d ' % seq, timeout, since)
        answer = _ANSWER.match(match.string)
        detail = (answer.group(4) or '') if answer else ''
        if match.group(1) == 'error':
            raise CommandFailed('%s: %s' % (command, detail))
        return detail

    def _write(self, data: bytes, timeout: float) -> None:
        if self._fd is None:
            raise ConsoleError('console of %s is not open' % self.domain)
        deadline = time.monotonic() + timeout
        while data:
            _, ready, _ = select.select([], [self._fd], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise ConsoleTimeout('cannot write to the console of %s within %gs' % (self.domain, timeout))
            try:
                data = data[os.write(self._fd, data):]
            except BlockingIOError:
                continue
