"""A real agent on an SGM-only or a heartbeat-only instance, as the scripted host plays the flavor."""

from __future__ import annotations

import json
import time
import uuid

from ha_guest.guest import registration
from ha_guest.testing import events as ev
from ha_guest.testing import wait_for
from tests.functional import base

SELF = str(uuid.UUID(int=1))


class TestSgmOnlyInstance(base.FunctionalTestCase):
    """Heartbeat off by flavor: the agent stops asking after not_enabled, SGM goes on."""

    def setUp(self) -> None:
        super().setUp()
        self.host_sock, guest_sock = self.add_channel(SELF)
        self.host = self.start_host(self.host_sock, heartbeat_enabled=False)
        self.agent = self.start_agent(guest_sock)

    def refused(self, since: int = 0) -> ev.Event:
        return self.host.wait_for(ev.NOT_ENABLED, since=since, timeout=base.TIMEOUT,
                                  where=lambda e: e.session == self.host.session)

    def status(self) -> dict:
        return json.loads(self.run_client(self.agent, 'status', '--json').stdout)

    def test_init_is_sent_once_per_session_and_logged_once(self) -> None:
        first = self.refused()
        self.assertEqual('init', first.data['type'])
        wait_for(lambda: self.status()['heartbeat_state'] == 'not_enabled', base.TIMEOUT,
                 message='the agent to show not_enabled')
        # Longer than the agent's retry period: no second init in this session.
        time.sleep(registration.INIT_RETRY_S + 0.5)
        self.assertEqual(1, len(self.host.events(ev.NOT_ENABLED)))
        self.assertEqual([], self.host.events(ev.REGISTERED))
        status = self.status()
        self.assertEqual((True, False), (status['heartbeat'], status['registered']))
        self.assertIn('heartbeat:  not enabled for this instance by its flavor',
                      self.run_client(self.agent, 'status').stdout)
        # Server group messaging is what this instance is for: it still works.
        mark = self.host.mark()
        self.run_client(self.agent, 'broadcast', 'standby ready')
        self.assertEqual(b'standby ready', self.host.wait_for(ev.BROADCAST, since=mark).data['payload'])
        # A new session (the compute agent reconnected) asks again, and logs again.
        mark = self.host.mark()
        self.host.disconnect()
        self.host.connect(self.host_sock, timeout=base.TIMEOUT)
        self.assertEqual('init', self.refused(since=mark).data['type'])
        wait_for(lambda: self.agent.log().count(registration.NOT_ENABLED_LOG) == 2, base.TIMEOUT,
                 message='the second session to be logged')
        self.assertEqual(2, self.agent.log().count('INFO ha_guest.guest.registration: ' + registration.NOT_ENABLED_LOG))
        self.assertNotIn('host reported not_enabled', self.agent.log())


class TestHeartbeatOnlyInstance(base.FunctionalTestCase):
    """SGM off by flavor: heartbeat works, SGM requests fail with nack not_enabled."""

    def test_sgm_is_refused_and_heartbeat_goes_on(self) -> None:
        host_sock, guest_sock = self.add_channel(SELF)
        host = self.start_host(host_sock, sgm_enabled=False)
        agent = self.start_agent(guest_sock)
        self.wait_registered(host)
        proc = self.run_client(agent, 'group-status', check=False)
        self.assertEqual(1, proc.returncode, proc.stderr)
        self.assertIn('nack: not_enabled', proc.stderr)
        mark = host.mark()
        self.run_client(agent, 'broadcast', 'anyone?')
        self.assertEqual('broadcast', host.wait_for(ev.NOT_ENABLED, since=mark, timeout=base.TIMEOUT).data['type'])
        host.wait_for(ev.HEALTHY, timeout=base.TIMEOUT)
        self.assertEqual('registered', json.loads(self.run_client(agent, 'status', '--json').stdout)['heartbeat_state'])
