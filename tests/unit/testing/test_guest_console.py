"""GuestConsole against a real pty whose other end plays the image's init."""

from __future__ import annotations

import os
import re
import threading
from typing import List

import testtools

from ha_guest.testing import guest_console

DOMAIN_XML = """<domain type='qemu'><name>vm</name><devices>
<serial type='pty'><source path='/dev/pts/7'/><target port='0'/></serial>
<console type='pty' tty='/dev/pts/7'><source path='/dev/pts/7'/><target type='serial' port='0'/></console>
</devices></domain>"""


class FakeInit:
    """The guest end of the pty: answers ``ha-guest-ctl <seq> <cmd>`` lines the way tools/guest-image/init does."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.received: List[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def write(self, text: str) -> None:
        # The guest's tty turns \n into \r\n (ONLCR).
        os.write(self.master, text.replace('\n', '\r\n').encode())

    def _run(self) -> None:
        buffered = b''
        while not self._stop.is_set():
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            buffered += data
            while b'\n' in buffered:
                raw, buffered = buffered.split(b'\n', 1)
                line = raw.decode()
                self.received.append(line)
                words = line.split(' ')
                if words[0] != 'ha-guest-ctl' or len(words) < 3:
                    continue
                seq, cmd = words[1], words[2]
                if cmd == 'hang':
                    self.write('agent: noise\nha-guest-ctl: error %s hang: agent not running\n' % seq)
                elif cmd == 'exit-agent':
                    self.write('ha-guest-ctl: ok %s exit-agent pid 97 status 0\n' % seq)
                elif cmd == 'ping':
                    pass  # never answered: the caller times out
                else:
                    self.write('ha-guest-ctl: ok %s %s\n' % (seq, cmd))

    def stop(self) -> None:
        self._stop.set()


class TestGuestConsole(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        master, slave = os.openpty()
        path = os.ttyname(slave)
        # Reading the master gives EIO while no slave is open: keep this one open throughout.
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        self.init = FakeInit(master)
        self.addCleanup(self.init.stop)
        self.console = guest_console.GuestConsole('vm', path=path).open()
        self.addCleanup(self.console.close)

    def test_send_returns_the_detail_of_the_answer(self) -> None:
        self.assertEqual('', self.console.send('fail-check disk full', timeout=5))
        self.assertEqual('pid 97 status 0', self.console.send('exit-agent', timeout=5))
        self.assertEqual(['ha-guest-ctl 1 fail-check disk full', 'ha-guest-ctl 2 exit-agent'], self.init.received)

    def test_error_answer_raises(self) -> None:
        exc = self.assertRaises(guest_console.CommandFailed, self.console.send, 'hang', 5)
        self.assertEqual('hang: agent not running', str(exc))
        self.assertIn('agent: noise', self.console.lines())

    def test_no_answer_times_out(self) -> None:
        self.assertRaises(guest_console.ConsoleTimeout, self.console.send, 'ping', 0.3)

    def test_bad_commands_are_refused_locally(self) -> None:
        self.assertRaises(ValueError, self.console.send, 'reboot')
        self.assertRaises(ValueError, self.console.send, 'broadcast a\nb')
        self.assertRaises(ValueError, self.console.send, 'broadcast ' + 'x' * 2000)
        self.assertEqual([], self.init.received)

    def test_wait_for_unsolicited_lines_after_a_mark(self) -> None:
        self.init.write('ha-guest-ctl: agent registered pid 5\n')
        self.assertEqual('5', self.console.wait_for(guest_console.AGENT_REGISTERED, 5).group(1))
        mark = self.console.mark()
        self.assertRaises(guest_console.ConsoleTimeout, self.console.wait_for, guest_console.AGENT_REGISTERED,
                          0.2, mark)
        self.init.write('ha-guest-ctl: agent registered pid 6\n')
        self.assertEqual('6', self.console.wait_for(guest_console.AGENT_REGISTERED, 5, mark).group(1))
        self.assertEqual(['ha-guest-ctl: agent registered pid 6'], self.console.lines(since=mark))


class TestPtyPath(testtools.TestCase):

    def test_serial_pty_from_domain_xml(self) -> None:
        self.patch(guest_console, '_domain_xml', lambda domain, uri: DOMAIN_XML)
        self.assertEqual('/dev/pts/7', guest_console.pty_path('vm'))

    def test_no_pty_is_an_error(self) -> None:
        self.patch(guest_console, '_domain_xml', lambda domain, uri: re.sub(r"type='pty'", "type='file'", DOMAIN_XML))
        self.assertRaises(guest_console.ConsoleError, guest_console.pty_path, 'vm')
