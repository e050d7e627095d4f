"""Functional test fixtures on a real RabbitMQ: broker check, private conf, service processes.

The broker comes from HA_GUEST_TRANSPORT_URL (default rabbit://guest:guest@127.0.0.1:5672/ha_guest_test,
the vhost of the tests, which keeps them apart from a cloud's exchanges on "/"); start
one with tools/ensure-rabbitmq.sh. A missing broker fails the test, it never skips it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Optional

import fixtures
import oslo_messaging
from testtools import content

from ha_guest import rpc
from ha_guest.rpc import transport as rpc_transport
from ha_guest.testing import messaging, wait_for
from tests.messaging import ConfFixture, unique

#: Bound of a single wait in these tests; a healthy run needs a fraction of it.
TIMEOUT = 10.0
CONTROLLER_MODULE = 'ha_guest.cmd.controller'


class RabbitFixture(fixtures.Fixture):
    """A private conf on the real broker with unique topics, plus RPC and notification transports."""

    def __init__(self, url: Optional[str] = None) -> None:
        super().__init__()
        self.url = url or messaging.transport_url()

    def _setUp(self) -> None:
        try:
            messaging.check_broker(self.url)
        except ConnectionError as exc:
            raise AssertionError(str(exc)) from None  # a missing broker fails the test
        self.conf = self.useFixture(ConfFixture(
            transport_url=self.url, host='functional-test', oslo_messaging_rabbit=messaging.RABBIT_OPTIONS)).conf
        self.transport = rpc_transport.get_rpc_transport(self.conf)
        self.addCleanup(self.transport.cleanup)
        self.notification_transport = rpc_transport.get_notification_transport(self.conf)
        self.addCleanup(self.notification_transport.cleanup)

    def service_config(self, path: str, host: str, **groups: dict[str, Any]) -> str:
        """Write a service config file (this fixture's broker and topics, plus ``groups``); return its path."""
        values: dict[str, dict[str, Any]] = {
            'rpc': {name: self.conf.rpc[name] for name in
                    ('controller_topic', 'controller_sync_topic', 'compute_topic')},
            'sink_notifications': {'topics': self.conf.sink_notifications.topics},
            'sink_vitrage': {'topics': self.conf.sink_vitrage.topics},
            'recovery': {'intent_topic': self.conf.recovery.intent_topic},
            # Nova's notifications on a topic and exchange of this fixture's own, unless a test names Nova's.
            'sgm': {name: self.conf.sgm[name] for name in
                    ('notification_topics', 'notification_exchange', 'notification_pool')},
        }
        for group, options in groups.items():
            values.setdefault(group, {}).update(options)
        return messaging.service_config(path, self.url, host, values)

    def controller_api(self, server: Optional[str] = None, timeout: Optional[float] = None) -> rpc.ControllerAPI:
        """Return a ControllerAPI client on this fixture's topics (pinned to ``server`` if given)."""
        return rpc.ControllerAPI(self.conf, self.transport, server=server, timeout=timeout)


class ServiceProcess(fixtures.Fixture):
    """A service started with ``python -m module``; its output is attached to the test, it is killed at cleanup."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: str, env: Optional[dict[str, str]] = None) -> None:
        super().__init__()
        self.name = name
        self.argv = [sys.executable, *argv]
        self.log_path = os.path.join(log_dir, '%s.log' % name)
        self.env = None if env is None else dict(os.environ, **env)
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def _setUp(self) -> None:
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=self.env)
        # The test gathers a fixture's details before the fixture's cleanups run:
        # the log is read then, while the process may still be writing it.
        self.addDetail('%s-log' % self.name, content.Content(content.UTF8_TEXT, self._log_bytes))
        self.addCleanup(self._kill)

    def log(self) -> str:
        """Return what the process wrote so far."""
        with open(self.log_path, encoding='utf-8', errors='replace') as handle:
            return handle.read()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, signum: int) -> None:
        """Send ``signum`` to the process (it must still run)."""
        assert self.proc is not None and self.proc.poll() is None, self.log()
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        """Send ``signum`` and wait for the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('%s (pid %d) did not exit within %.0fs of signal %d'
                                 % (self.name, self.proc.pid, timeout, signum)) from None

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(TIMEOUT)

    def _log_bytes(self) -> list[bytes]:
        status = self.proc.poll() if self.proc is not None else None
        try:
            text = self.log()
        except OSError as exc:
            text = 'no log: %s' % exc
        return [('exit status %s\n%s' % (status, text)).encode('utf-8')]


class ControllerProcess(ServiceProcess):
    """A real ha-guest-controller on the fixture's broker and topics, ready when started."""

    def __init__(self, rabbit: RabbitFixture, host: str, tmp: str, env: Optional[dict[str, str]] = None,
                 **groups: dict[str, Any]) -> None:
        # A journal of its own per host name (a test that starts one again finds what it told the sinks).
        journal = {'announce_journal': os.path.join(tmp, '%s-announced.jsonl' % host)}
        groups = dict(groups, controller=dict(journal, **groups.get('controller', {})))
        self.config = rabbit.service_config(os.path.join(tmp, '%s.conf' % host), host, **groups)
        super().__init__(host, ['-m', CONTROLLER_MODULE, '--config-file', self.config], tmp, env=env)
        self.rabbit = rabbit
        self.host = host

    def _setUp(self) -> None:
        super()._setUp()
        self.api = self.rabbit.controller_api(server=self.host)
        probe = self.rabbit.controller_api(server=self.host, timeout=0.5)

        def answers() -> bool:
            if not self.alive():
                raise AssertionError('%s exited with %s before answering:\n%s'
                                     % (self.name, self.proc.returncode if self.proc else None, self.log()))
            try:
                probe.list_faults(None)
            except oslo_messaging.MessagingTimeout:
                return False
            except oslo_messaging.MessageDeliveryFailure as failure:
                # Before the controller declared its exchange, the broker refuses the publish
                # ("404 NOT_FOUND - no exchange"): not started yet, not broken.
                if 'NOT_FOUND' not in str(failure):
                    raise
                return False
            return True

        wait_for(answers, 15.0, message='%s to answer list_faults' % self.name)


__all__ = ['ControllerProcess', 'RabbitFixture', 'ServiceProcess', 'TIMEOUT', 'unique']
