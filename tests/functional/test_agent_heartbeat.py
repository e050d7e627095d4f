"""The real guest agent against the scripted host: registration, challenges, health and exit."""

from __future__ import annotations

import json
import os
import signal
import time

from ha_guest.testing import events as ev
from ha_guest.testing import wait_for
from tests.functional import base


class TestRegistration(base.FunctionalTestCase):

    def test_registers_with_its_interval(self) -> None:
        host_sock, guest_sock = self.add_channel()
        host = self.start_host(host_sock)
        agent = self.start_agent(guest_sock, interval_ms=250)
        ack = host.wait_for(ev.HELLO_ACK, timeout=base.TIMEOUT)
        self.assertEqual(1, ack.data['version'])
        self.assertTrue(ack.data['agent'].startswith('ha-guest-agent/'), ack.data['agent'])
        registered = self.wait_registered(host)
        self.assertLessEqual(ack.t, registered.t)
        self.assertEqual(250, registered.data['requested_ms'])
        self.assertEqual(250, registered.data['interval_ms'])
        status = self._status(agent)
        self.assertTrue(status['connected'])
        self.assertTrue(status['registered'])
        self.assertEqual(host.session, status['session'])
        self.assertEqual(250, status['interval_ms'])
        self.assertEqual(1, status['miss_threshold'])

    def test_agent_started_before_the_host(self) -> None:
        host_sock, guest_sock = self.add_channel()
        agent = self.start_agent(guest_sock)
        wait_for(lambda: os.path.exists(agent.api_socket), base.TIMEOUT, message='the agent socket')
        host = self.start_host(host_sock, miss_threshold=3)
        self.wait_registered(host)
        status = self._status(agent)
        self.assertEqual(3, status['miss_threshold'])

    def test_host_clamps_the_interval(self) -> None:
        host_sock, guest_sock = self.add_channel()
        host = self.start_host(host_sock, min_interval_ms=300)
        agent = self.start_agent(guest_sock, interval_ms=100)
        registered = self.wait_registered(host)
        self.assertEqual(100, registered.data['requested_ms'])
        self.assertEqual(300, registered.data['interval_ms'])
        wait_for(lambda: self._status(agent).get('interval_ms') == 300, base.TIMEOUT,
                 message='the agent to adopt 300 ms')

    def _status(self, agent: base.Agent) -> dict:
        return json.loads(self.run_client(agent, 'status', '--json').stdout)


class TestChallenges(base.FunctionalTestCase):

    def test_challenges_answered_within_the_interval(self) -> None:
        host_sock, guest_sock = self.add_channel()
        host = self.start_host(host_sock)
        self.start_agent(guest_sock)
        self.wait_registered(host)
        session = host.session

        def settled() -> list:
            done = [c for c in host.challenges(session) if c.answered_at is not None or c.missed]
            return done if len(done) >= 30 else []

        done = host.wait_until(settled, timeout=base.TIMEOUT, what='30 answered challenges')[:30]
        late = [c for c in done if not c.on_time]
        self.assertEqual([], late, 'challenges not answered before the next one')
        self.assertEqual({'healthy'}, {c.health for c in done})
        self.assertLess(max(c.reply_ms for c in done), base.INTERVAL_MS)
        self.assertEqual([], host.events(ev.MISSED))
        self.assertEqual(0, host.unknown_nonces)


class TestHealth(base.FunctionalTestCase):

    def setUp(self) -> None:
        super().setUp()
        host_sock, self.guest_sock = self.add_channel()
        self.host = self.start_host(host_sock)

    def test_failing_check_turns_unhealthy(self) -> None:
        marker = os.path.join(self.tmp, 'service-ok')
        open(marker, 'w').close()
        self.start_agent(self.guest_sock, checks={'marker': 'test -e %s' % marker},
                         extra=['--check-period', '0.2', '--check-timeout', '2'])
        self.wait_registered(self.host)
        self.host.wait_for(ev.HEALTHY, timeout=base.TIMEOUT)
        mark = self.host.mark()
        os.unlink(marker)
        unhealthy = self.host.wait_for(ev.UNHEALTHY, since=mark, timeout=base.TIMEOUT)
        self.assertIn('check marker exited 1', unhealthy.data['reason'])
        mark = self.host.mark()
        open(marker, 'w').close()
        healthy = self.host.wait_for(ev.HEALTHY, since=mark, timeout=base.TIMEOUT)
        self.assertEqual('', healthy.data['reason'])
        self.assertEqual([], self.host.events(ev.MISSED))

    def test_app_report_via_the_cli(self) -> None:
        agent = self.start_agent(self.guest_sock)
        self.wait_registered(self.host)
        self.host.wait_for(ev.HEALTHY, timeout=base.TIMEOUT)
        mark = self.host.mark()
        self.run_client(agent, 'report', 'unhealthy', '--source', 'db', '--reason', 'replica lag 30s')
        sent = time.monotonic()  # the agent has the report once the CLI returned
        unhealthy = self.host.wait_for(ev.UNHEALTHY, since=mark, timeout=base.TIMEOUT)
        self.assertIn('replica lag 30s', unhealthy.data['reason'])
        # The next challenge after the report gets the new health (two intervals of slack).
        self.assertLess(unhealthy.t - sent, 2 * base.INTERVAL_MS / 1000.0 + 0.2)
        # Every answer stays unhealthy until the app says otherwise.
        answers = self._answers_after(unhealthy.t, 5)
        self.assertEqual({'unhealthy'}, {c.health for c in answers})
        mark = self.host.mark()
        self.run_client(agent, 'report', 'healthy', '--source', 'db')
        self.host.wait_for(ev.HEALTHY, since=mark, timeout=base.TIMEOUT)
        self.assertEqual([], self.host.events(ev.MISSED))

    def test_expiring_report_turns_unhealthy_by_itself(self) -> None:
        agent = self.start_agent(self.guest_sock)
        self.wait_registered(self.host)
        self.host.wait_for(ev.HEALTHY, timeout=base.TIMEOUT)
        mark = self.host.mark()
        sent = time.monotonic()
        self.run_client(agent, 'report', 'healthy', '--source', 'worker', '--expires-in', '0.5')
        unhealthy = self.host.wait_for(ev.UNHEALTHY, since=mark, timeout=base.TIMEOUT)
        self.assertIn('report from worker expired', unhealthy.data['reason'])
        self.assertGreaterEqual(unhealthy.t - sent, 0.5)
        mark = self.host.mark()
        self.run_client(agent, 'clear', '--source', 'worker')
        self.host.wait_for(ev.HEALTHY, since=mark, timeout=base.TIMEOUT)

    def _answers_after(self, t: float, count: int) -> list:
        def answered() -> list:
            got = [c for c in self.host.challenges() if c.sent_at > t and c.answered_at is not None]
            return got[:count] if len(got) >= count else []

        return self.host.wait_until(answered, timeout=base.TIMEOUT, what='%d more answers' % count)


class TestExit(base.FunctionalTestCase):

    def test_sigterm_sends_exit_and_ends_cleanly(self) -> None:
        host_sock, guest_sock = self.add_channel()
        host = self.start_host(host_sock)
        agent = self.start_agent(guest_sock)
        self.wait_registered(host)
        host.wait_for(ev.HEALTHY, timeout=base.TIMEOUT)
        mark = host.mark()
        agent.signal(signal.SIGTERM)
        exited = host.wait_for(ev.EXITED, since=mark, timeout=base.TIMEOUT)
        self.assertEqual('agent stopping', exited.data['reason'])
        self.assertEqual(0, agent.wait())
        self.assertFalse(host.registered)
        self.assertEqual([], host.events(ev.MISSED, since=mark))
