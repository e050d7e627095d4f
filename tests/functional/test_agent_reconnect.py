"""The real guest agent when the host side goes away, comes back, and leaves frames queued in QEMU."""

from __future__ import annotations

import json
import signal
import time

from ha_guest.testing import events as ev
from ha_guest.testing import wait_for
from tests.functional import base

#: CPU the agent may use while nobody is on the host side: it must back off, not spin.
MAX_IDLE_CPU = 0.10
CPU_WINDOW_S = 2.0


class ReconnectTestCase(base.FunctionalTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.instance = 'c0ffee00-0000-4000-8000-000000000001'
        self.host_sock, self.guest_sock = self.add_channel(self.instance)

    def assert_idle(self, agent: base.Agent) -> None:
        """Fail if the agent uses 10 % of a core or more over two seconds (a spin, not a benchmark)."""
        before = base.cpu_seconds(agent.pid)
        start = time.monotonic()
        time.sleep(CPU_WINDOW_S)
        used = (base.cpu_seconds(agent.pid) - before) / (time.monotonic() - start)
        self.assertIsNone(agent.proc.poll(), 'the agent exited while the host was away')
        self.assertLess(used, MAX_IDLE_CPU, 'agent used %.0f%% of a core with no host' % (used * 100))

    def assert_answering(self, host, count: int = 5) -> None:
        """Wait until ``count`` challenges of the current session were answered on time."""
        session = host.session

        def answered() -> bool:
            return len([c for c in host.challenges(session) if c.on_time]) >= count

        host.wait_until(answered, timeout=base.TIMEOUT, what='%d answers in session %s' % (count, session))
        self.assertEqual([], [c for c in host.challenges(session) if c.missed])

    def status(self, agent: base.Agent) -> dict:
        return json.loads(self.run_client(agent, 'status', '--json').stdout)


class TestReconnect(ReconnectTestCase):

    def test_host_goes_away_and_comes_back(self) -> None:
        host = self.start_host(self.host_sock)
        agent = self.start_agent(self.guest_sock)
        self.wait_registered(host)
        first = host.session
        host.disconnect()
        self.assert_idle(agent)
        mark = host.mark()
        second = host.connect(self.host_sock, timeout=base.TIMEOUT)
        self.assertNotEqual(first, second)
        registered = self.wait_registered(host, since=mark)
        self.assertEqual(second, registered.session)
        self.assert_answering(host)
        status = self.status(agent)
        self.assertEqual(second, status['session'])
        self.assertGreaterEqual(status['counters']['reconnects'], 1)

    def test_emulator_restart(self) -> None:
        host = self.start_host(self.host_sock, auto_reconnect=True)
        agent = self.start_agent(self.guest_sock)
        self.wait_registered(host)
        first = host.session
        mark = host.mark()
        self.emulator.remove(self.instance)
        host.wait_for(ev.DISCONNECTED, since=mark, timeout=base.TIMEOUT)
        # Neither socket exists now: the agent's connect() fails at once, again and again.
        self.assert_idle(agent)
        mark = host.mark()
        self.emulator.add(self.instance)
        registered = host.wait_for(ev.REGISTERED, since=mark, timeout=base.TIMEOUT)
        self.assertNotEqual(first, registered.session)
        self.assertEqual(registered.session, host.session)
        self.assert_answering(host)


class TestQueuedFrames(ReconnectTestCase):
    """QEMU keeps bytes while nobody reads: frames of an old session arrive on a new connection."""

    def test_answer_to_an_old_session_is_dropped(self) -> None:
        host = self.start_host(self.host_sock, auto_challenge=False)
        agent = self.start_agent(self.guest_sock)
        self.wait_registered(host)
        # The agent cannot read while stopped: the challenge waits in its socket.
        agent.signal(signal.SIGSTOP)
        self.addCleanup(agent.signal, signal.SIGCONT)
        nonce = host.challenge()
        host.disconnect()
        wait_for(lambda: self.emulator.stats(self.instance).guest_half_closed, base.TIMEOUT,
                 message='the guest to be half-closed')
        mark = host.mark()
        second = host.connect(self.host_sock, timeout=base.TIMEOUT)
        agent.signal(signal.SIGCONT)
        # The agent answers the old challenge in the old session; QEMU hands it to the new connection.
        host.wait_until(lambda: host.stale_frames >= 1, timeout=base.TIMEOUT, what='the stale answer')
        registered = self.wait_registered(host, since=mark)
        self.assertEqual(second, registered.session)
        self.assertEqual(0, host.unknown_nonces)
        self.assertEqual([], [c for c in host.challenges(second) if c.nonce == nonce])
        self.assertEqual([], host.events(ev.ERROR))
        host.set_auto_challenge(True)
        self.assert_answering(host)

    def test_hellos_of_old_sessions_are_superseded(self) -> None:
        host = self.start_host(self.host_sock, auto_challenge=False)
        agent = self.start_agent(self.guest_sock)
        self.wait_registered(host)
        agent.signal(signal.SIGSTOP)
        self.addCleanup(agent.signal, signal.SIGCONT)
        host.disconnect()
        wait_for(lambda: self.emulator.stats(self.instance).guest_half_closed, base.TIMEOUT,
                 message='the guest to be half-closed')
        # A host that comes and goes while the guest does not read leaves a hello and a challenge queued.
        old = host.connect(self.host_sock, timeout=base.TIMEOUT)
        old_nonce = host.challenge()
        wait_for(lambda: self.emulator.stats(self.instance).queued_to_guest > 0, base.TIMEOUT,
                 message='frames queued for the guest')
        host.disconnect()
        mark = host.mark()
        new = host.connect(self.host_sock, timeout=base.TIMEOUT)
        host.set_auto_challenge(True)
        agent.signal(signal.SIGCONT)
        registered = self.wait_registered(host, since=mark)
        self.assertEqual(new, registered.session)
        self.assertNotEqual(old, new)
        self.assert_answering(host)
        # Whatever the agent made of the old session's frames, it must not answer the old challenge
        # in the new session (nor ack the old hello there): the host never asked that nonce.
        self.assertEqual(0, host.unknown_nonces, 'the agent answered a challenge of a superseded session '
                                                 'in the new session')
        self.assertEqual([], [c for c in host.challenges(new) if c.nonce == old_nonce])
        self.assertEqual([], host.events(ev.ERROR))
        self.assertEqual(new, self.status(agent)['session'])
