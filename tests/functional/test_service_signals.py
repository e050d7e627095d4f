"""The real services under their launcher: start log, systemd notifications, SIGHUP reloads, SIGTERM stops."""

from __future__ import annotations

import os
import re
import signal
import socket
import uuid
from typing import Optional

from ha_guest.cmd.launcher import version_string
from ha_guest.testing import wait_for
from tests.functional.base import FunctionalTestCase
from tests.functional.rabbit import TIMEOUT, ControllerProcess, RabbitFixture, ServiceProcess

COMPUTE_MODULE = 'ha_guest.cmd.compute'


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; keeps what the service sends."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def states(self) -> list[str]:
        """Return the READY/RELOADING/STOPPING lines received so far, in order."""
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode('utf-8'))
            except socket.timeout:
                break
        return [line for message in self.messages for line in message.split('\n')
                if line.split('=')[0] in ('READY', 'RELOADING', 'STOPPING')]

    def close(self) -> None:
        self.sock.close()


def _set_option(path: str, group: str, name: str, value: str) -> None:
    """Set ``[group] name = value`` in an INI file written by service_config (the group exists)."""
    with open(path, encoding='utf-8') as handle:
        lines = handle.read().splitlines()
    start = lines.index('[%s]' % group)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith('[')), len(lines))
    body = [line for line in lines[start + 1:end] if not line.startswith('%s =' % name)]
    lines[start + 1:end] = ['%s = %s' % (name, value)] + body
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('\n'.join(lines) + '\n')


class TestServiceSignals(FunctionalTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.rabbit = self.useFixture(RabbitFixture())
        self.notify = NotifySocket(os.path.join(self.tmp, 'notify.sock'))
        self.addCleanup(self.notify.close)

    def _after(self, process: ServiceProcess, mark: int, text: str, timeout: float = TIMEOUT) -> str:
        """Wait until ``text`` appears in the log after offset ``mark``; return that part of the log."""
        def found() -> Optional[str]:
            if not process.alive():
                raise AssertionError('%s exited:\n%s' % (process.name, process.log()))
            tail = process.log()[mark:]
            return tail if text in tail else None

        return wait_for(found, timeout, message='%r in the log of %s' % (text, process.name))

    def test_controller_logs_start_reloads_on_sighup_and_stops_on_sigterm(self) -> None:
        host = 'signals-controller'
        controller = self.useFixture(ControllerProcess(self.rabbit, host, self.tmp, env={
            'NOTIFY_SOCKET': self.notify.path}, DEFAULT={'debug': 'False'}))
        pid = controller.proc.pid if controller.proc else None
        start = controller.log()
        # Version and every option's value at start, secrets masked, our own exchange.
        self.assertIn('ha-guest-controller %s starting' % version_string(), start)
        self.assertRegex(start, r'(?m) control_exchange += ha_guest$')
        self.assertRegex(start, r'(?m) rpc\.controller_topic += %s$' % re.escape(self.rabbit.conf.rpc.controller_topic))
        self.assertRegex(start, r'(?m) transport_url += \*\*\*\*$')
        self.assertNotIn(self.rabbit.url, start)
        self.assertNotRegex(start, r' DEBUG ')
        wait_for(lambda: self.notify.states()[:1] == ['READY=1'], TIMEOUT, message='READY=1 from the controller')

        # SIGHUP after turning debug on: oslo.log's level changes, the process and its pid stay.
        # A change to an option that is not mutable is refused with a warning, never applied.
        _set_option(controller.config, 'DEFAULT', 'debug', 'True')
        _set_option(controller.config, 'rpc', 'controller_topic', 'changed_topic_' + uuid.uuid4().hex[:6])
        mark = len(controller.log())
        controller.send(signal.SIGHUP)
        reloaded = self._after(controller, mark, 'SIGHUP: configuration reloaded')
        self.assertIn('Option DEFAULT.debug changed from [False] to [True]', reloaded)
        self.assertIn('changed: DEFAULT.debug', reloaded)
        self.assertIn('Ignoring change to immutable option rpc.controller_topic', reloaded)
        self._after(controller, mark, ' DEBUG ')  # the values in force, logged at DEBUG now that it is on
        self.assertTrue(controller.alive())
        self.assertEqual(pid, controller.proc.pid if controller.proc else None)
        # Still serving on the topic it started with.
        self.assertEqual([], controller.api.list_faults(None))
        wait_for(lambda: self.notify.states()[:3] == ['READY=1', 'RELOADING=1', 'READY=1'], TIMEOUT,
                 message='RELOADING=1 then READY=1')

        # A second SIGHUP with nothing changed, then a broken file: the running configuration stays.
        mark = len(controller.log())
        controller.send(signal.SIGHUP)
        self.assertIn('no mutable option changed', self._after(controller, mark, 'SIGHUP: configuration reloaded'))
        with open(controller.config, 'a', encoding='utf-8') as handle:
            handle.write('this is not an ini line\n')
        mark = len(controller.log())
        controller.send(signal.SIGHUP)
        self._after(controller, mark, 'SIGHUP: cannot reload the configuration, keeping the running one')
        self.assertEqual([], controller.api.list_faults(None))

        # SIGTERM: drained and stopped, exit status 0.
        mark = len(controller.log())
        self.assertEqual(0, controller.stop(signal.SIGTERM))
        stopped = controller.log()[mark:]
        self.assertIn('SIGTERM received, stopping', stopped)
        self.assertIn('ha-guest-controller stopped', stopped)
        self.assertEqual('STOPPING=1', self.notify.states()[-1])

    def test_compute_agent_keeps_running_on_sighup_and_saves_state_on_sigterm(self) -> None:
        host = 'signals-compute'
        state_file = os.path.join(self.tmp, 'compute-state.json')
        config = self.rabbit.service_config(os.path.join(self.tmp, 'compute.conf'), host, compute={
            'discovery_driver': 'directory', 'directory_path': os.path.join(self.tmp, 'h'),
            'state_file': state_file, 'state_report_interval_s': 60}, DEFAULT={'debug': 'False'})
        compute = self.useFixture(ServiceProcess(host, ['-m', COMPUTE_MODULE, '--config-file', config], self.tmp,
                                                 env={'NOTIFY_SOCKET': self.notify.path}))
        self._after(compute, 0, 'ha-guest-compute started')
        start = compute.log()
        self.assertIn('ha-guest-compute %s starting' % version_string(), start)
        self.assertRegex(start, r'(?m) compute\.discovery_driver += directory$')
        self.assertEqual(['READY=1'], self.notify.states())

        # The mutable [compute] state_report_interval_s changes; the agent is not restarted.
        _set_option(config, 'compute', 'state_report_interval_s', '45')
        mark = len(compute.log())
        compute.send(signal.SIGHUP)
        reloaded = self._after(compute, mark, 'SIGHUP: configuration reloaded')
        self.assertIn('changed: compute.state_report_interval_s', reloaded)
        self.assertNotIn('compute agent started', reloaded)
        self.assertTrue(compute.alive())

        self.assertEqual(0, compute.stop(signal.SIGTERM))
        self.assertIn('compute agent stopped', compute.log())
        self.assertTrue(os.path.exists(state_file), 'the state file is saved on SIGTERM')
        self.assertEqual(['READY=1', 'RELOADING=1', 'READY=1', 'STOPPING=1'], self.notify.states())
