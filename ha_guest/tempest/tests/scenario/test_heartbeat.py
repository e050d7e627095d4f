"""A server with the heartbeat flavor: its agent registers, a hung agent is recovered, a clean exit is quiet."""

from __future__ import annotations

import time
from typing import Any

from tempest import config
from tempest.lib import decorators

from ha_guest.tempest.tests import base

CONF = config.CONF


class HeartbeatScenarioTest(base.HAGuestScenarioTest):
    """Boot, fault and recovery seen through Nova's API (console output and instance actions)."""

    @decorators.attr(type=['slow'])
    @decorators.idempotent_id('5b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c41')
    def test_agent_registers(self) -> None:
        server, output = self.boot(**{base.HEARTBEAT: 'true'})
        # A registration is the host's answer to the agent over the channel that our
        # driver put into the domain: the whole boot path worked.
        self.assertRegex(output, CONF.ha_guest.registered_regex)
        self.assertEqual([], self.reboots(server['id']))

    @decorators.attr(type=['slow'])
    @decorators.idempotent_id('9c0d1e2f-4a5b-4c6d-9e7f-8a9b0c1d2e51')
    def test_hung_agent_rebooted(self) -> None:
        if not CONF.ha_guest.recovery:
            raise self.skipException('[ha_guest] recovery is False')
        server, output = self.boot(**{base.HEARTBEAT: 'true', base.RECOVERY: 'reboot'})
        with self.guest_console(server['id']) as console:
            console.send('hang', timeout=30)
            hung = time.monotonic()
        action = base.wait_until('a reboot of server %s' % server['id'], CONF.ha_guest.detection_timeout,
                                 lambda: next(iter(self.reboots(server['id'])), None))
        self.figures['hang to reboot action'] = time.monotonic() - hung
        expected = self.service_user_id()
        if expected is not None:
            self.assertEqual(expected, action['user_id'], 'the reboot was not made by [ha_guest] service_user')
        else:
            self.assertNotEqual(self.os_primary.credentials.user_id, action['user_id'])
        self.wait_registered(server['id'], CONF.ha_guest.recovery_timeout, after=output)
        self.figures['hang to registered again'] = time.monotonic() - hung
        # One fault, one recovery: the registered agent heartbeats, nothing reboots it again.
        self.assertEqual(1, len(self.reboots(server['id'])))

    @decorators.attr(type=['slow'])
    @decorators.idempotent_id('2e3f4a5b-6c7d-4e8f-a9b0-c1d2e3f4a561')
    def test_hung_agent_vitrage_alarm(self) -> None:
        if not CONF.ha_guest.vitrage:
            raise self.skipException('[ha_guest] vitrage is False')
        from ha_guest.tempest.tests import vitrage

        server, _ = self.boot(**{base.HEARTBEAT: 'true', base.RECOVERY: 'none'})
        client = vitrage.client(self.os_admin)
        with self.guest_console(server['id']) as console:
            console.send('hang', timeout=30)
            hung = time.monotonic()
            alarm = base.wait_until('a Vitrage alarm on server %s' % server['id'],
                                    CONF.ha_guest.detection_timeout,
                                    lambda: vitrage.ha_guest_alarm(client, server['id']), interval=2.0)
            self.figures['hang to Vitrage alarm'] = time.monotonic() - hung
            self.assertEqual('ha_guest', alarm['vitrage_type'])
            console.send('resume', timeout=30)
        self.assertEqual([], self.reboots(server['id']))

    @decorators.attr(type=['slow'])
    @decorators.idempotent_id('7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c71')
    def test_clean_exit_raises_nothing(self) -> None:
        server, _ = self.boot(**{base.HEARTBEAT: 'true', base.RECOVERY: 'reboot'})
        with self.guest_console(server['id']) as console:
            detail = console.send('exit-agent', timeout=30)
        self.assertRegex(detail, r'status 0$')
        deadline = time.monotonic() + CONF.ha_guest.quiet_period
        client: Any = None
        if CONF.ha_guest.vitrage:
            from ha_guest.tempest.tests import vitrage

            client = vitrage.client(self.os_admin)
        while time.monotonic() < deadline:
            self.assertEqual([], self.reboots(server['id']), 'a clean exit led to a reboot')
            shown = self.servers_client.show_server(server['id'])['server']
            self.assertEqual('ACTIVE', shown['status'])
            if client is not None:
                self.assertIsNone(vitrage.ha_guest_alarm(client, server['id']), 'a clean exit raised an alarm')
            time.sleep(2.0)
