"""ha_guest.cmd.launcher in a child process: signals, reload, systemd notifications, exit statuses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Callable

import testtools

# A service that prints what the launcher asks of it; the test drives it with signals.
CHILD = textwrap.dedent(
    """
    import sys, time
    from ha_guest.cmd import prepare_process
    prepare_process()
    from oslo_config import cfg
    from oslo_log import log as logging
    from oslo_service.backend.base import ServiceBase
    from ha_guest.cmd.launcher import Launcher, log_start

    mode, config = sys.argv[1], sys.argv[2]
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    conf.register_opts([cfg.IntOpt('knob', default=1, mutable=True), cfg.IntOpt('fixed', default=1)])
    conf(['--config-file', config], project='launcher_test')
    logging.setup(conf, 'launcher_test')

    class Service(ServiceBase):
        def start(self):
            print('> start', flush=True)
            if mode == 'fail':
                raise RuntimeError('cannot load the driver')
            if mode == 'slowstart':
                time.sleep(1)
                print('> started', flush=True)
        def stop(self):
            print('> stop', flush=True)
            if mode == 'slow':
                time.sleep(30)
        def wait(self):
            print('> wait', flush=True)
        def reset(self):
            print('> reset knob=%d fixed=%d' % (conf.knob, conf.fixed), flush=True)

    log_start(conf, 'launcher-test')
    status = Launcher(conf, Service(), 'launcher-test').run()
    print('> exit', status, flush=True)
    sys.exit(status)
    """
)


class TestLauncher(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(['rm', '-rf', self.tmp], check=False))
        self.config = os.path.join(self.tmp, 'test.conf')
        self.write_config(knob=1, fixed=1)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(os.path.join(self.tmp, 'notify'))
        self.notify.settimeout(10)
        self.addCleanup(self.notify.close)
        self.log: list[str] = []

    def write_config(self, **values: int) -> None:
        with open(self.config, 'w', encoding='utf-8') as handle:
            handle.write('[DEFAULT]\n' + ''.join('%s = %d\n' % item for item in values.items()))

    def start(self, mode: str = 'normal') -> subprocess.Popen[str]:
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(self.tmp, 'notify'), PYTHONUNBUFFERED='1')
        proc = subprocess.Popen([sys.executable, '-c', CHILD, mode, self.config], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def until(self, proc: subprocess.Popen[str], line: str) -> list[str]:
        """Read the child's protocol lines ("> ...") up to and including ``line``; keep its log lines."""
        assert proc.stdout is not None
        seen = []
        for got in proc.stdout:
            if not got.startswith('> '):
                self.log.append(got)
                continue
            seen.append(got[2:].rstrip('\n'))
            if seen[-1] == line:
                return seen
        raise AssertionError('no %r in the output %s; log:\n%s' % (line, seen, ''.join(self.log)))

    def notified(self, check: Callable[[str], bool]) -> str:
        """Return the next systemd notification, which must pass ``check``."""
        message = self.notify.recv(4096).decode()
        self.assertTrue(check(message), message)
        return message

    def test_sighup_reloads_and_sigterm_stops(self) -> None:
        proc = self.start()
        self.until(proc, 'start')
        self.notified(lambda message: message.startswith('READY=1'))
        self.write_config(knob=7, fixed=9)
        proc.send_signal(signal.SIGHUP)
        # The mutable option changes, the other keeps its start value; the service is not restarted.
        self.assertEqual(['reset knob=7 fixed=1'], self.until(proc, 'reset knob=7 fixed=1'))
        self.notified(lambda message: message.startswith('RELOADING=1\nMONOTONIC_USEC='))
        self.notified(lambda message: message.startswith('READY=1'))
        proc.send_signal(signal.SIGHUP)
        self.until(proc, 'reset knob=7 fixed=1')
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(['stop', 'wait', 'exit 0'], self.until(proc, 'exit 0'))
        self.assertEqual(0, proc.wait(10))
        self.notified(lambda message: message.startswith('RELOADING=1'))
        self.notified(lambda message: message.startswith('READY=1'))
        self.notified(lambda message: message == 'STOPPING=1')
        log = ''.join(self.log)
        self.assertIn('launcher-test', log)
        self.assertIn('knob                           = 1', log)  # option values at start
        self.assertIn('Ignoring change to immutable option DEFAULT.fixed', log)
        self.assertIn('SIGTERM received, stopping', log)

    def test_sigint_stops_like_sigterm(self) -> None:
        proc = self.start()
        self.until(proc, 'start')
        proc.send_signal(signal.SIGINT)
        self.assertEqual(['stop', 'wait', 'exit 0'], self.until(proc, 'exit 0'))

    def test_signals_during_start_wait_for_it(self) -> None:
        proc = self.start('slowstart')
        self.until(proc, 'start')
        # While the service starts: never fatal, served once it has started.
        proc.send_signal(signal.SIGHUP)
        self.assertEqual(['started', 'reset knob=1 fixed=1'], self.until(proc, 'reset knob=1 fixed=1'))
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(['stop', 'wait', 'exit 0'], self.until(proc, 'exit 0'))
        self.assertEqual(0, proc.wait(10))

    def test_start_failure_stops_and_exits_1(self) -> None:
        proc = self.start('fail')
        self.assertEqual(['start', 'stop', 'wait', 'exit 1'], self.until(proc, 'exit 1'))
        self.assertEqual(1, proc.wait(10))
        self.assertIn('launcher-test cannot start: cannot load the driver', ''.join(self.log))

    def test_second_stop_signal_exits_at_once(self) -> None:
        proc = self.start('slow')
        self.until(proc, 'start')
        proc.send_signal(signal.SIGTERM)
        self.until(proc, 'stop')
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        self.assertEqual(1, proc.wait(10))
        self.assertLess(time.monotonic() - started, 5)
