"""Server group messaging through the real guest agent and the real ha-guest-client CLI."""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import uuid

from ha_guest.testing import events as ev
from ha_guest.testing import wait_for
from tests.functional import base

SELF = str(uuid.UUID(int=1))
PEER = str(uuid.UUID(int=2))


class TestGroupMessaging(base.FunctionalTestCase):

    def setUp(self) -> None:
        super().setUp()
        host_sock, guest_sock = self.add_channel(SELF)
        self.host = self.start_host(host_sock)
        self.agent = self.start_agent(guest_sock)
        self.wait_registered(self.host)

    def test_broadcast_reaches_the_host(self) -> None:
        mark = self.host.mark()
        self.run_client(self.agent, 'broadcast', 'leader is db-1')
        event = self.host.wait_for(ev.BROADCAST, since=mark, timeout=base.TIMEOUT)
        self.assertEqual(b'leader is db-1', event.data['payload'])
        self.assertEqual(self.host.session, event.session)
        self.assertEqual(b'leader is db-1', self.host.broadcasts[-1][3])

    def test_deliveries_and_notifications_reach_a_listener(self) -> None:
        listener = self.start_client(self.agent, 'listen', '--json')
        lines = self._lines(listener)
        # The listener subscribes some time after it starts: deliver until one arrives.
        deadline = time.monotonic() + base.TIMEOUT
        first = None
        while first is None:
            self.assertLess(time.monotonic(), deadline, 'the listener printed nothing')
            self.host.send_broadcast_deliver(PEER, b'probe')
            try:
                first = json.loads(lines.get(timeout=0.3))
            except queue.Empty:
                pass
        self.assertEqual({'event': 'broadcast', 'sender': PEER, 'payload': base64.b64encode(b'probe').decode()},
                         first)
        self.host.send_broadcast_deliver(PEER, b'\x00binary\xff')
        self.host.send_notification(PEER, 'instance.power_off.end', 'stopped', 'shutdown')
        got = [json.loads(lines.get(timeout=base.TIMEOUT)) for _ in range(2)]
        # Late probes may come first; drop them.
        while got[0].get('payload') == first['payload']:
            got = got[1:] + [json.loads(lines.get(timeout=base.TIMEOUT))]
        self.assertEqual(b'\x00binary\xff', base64.b64decode(got[0]['payload']))
        self.assertEqual({'event': 'notification', 'member': PEER, 'event_type': 'instance.power_off.end',
                          'state': 'stopped', 'power_state': 'shutdown'}, got[1])

    def test_group_status_returns_the_hosts_members(self) -> None:
        self.host.set_members([(SELF, 'active', 'running', True), (PEER, 'stopped', 'shutdown', False)])
        mark = self.host.mark()
        members = json.loads(self.run_client(self.agent, 'group-status', '--json').stdout)
        self.host.wait_for(ev.STATUS_REQUEST, since=mark, timeout=base.TIMEOUT)
        self.assertEqual([{'uuid': SELF, 'state': 'active', 'power_state': 'running', 'self': True},
                          {'uuid': PEER, 'state': 'stopped', 'power_state': 'shutdown', 'self': False}], members)
        table = self.run_client(self.agent, 'group-status').stdout
        self.assertIn(PEER, table)
        self.assertIn('(self)', table)

    def test_group_status_nack_is_an_error(self) -> None:
        self.host.status_nack = 'no_group'
        proc = self.run_client(self.agent, 'group-status', check=False)
        self.assertEqual(1, proc.returncode, proc.stderr)
        self.assertIn('nack', proc.stderr)
        self.assertIn('no_group', proc.stderr)

    def test_broadcast_without_a_host_is_refused(self) -> None:
        self.host.disconnect()
        wait_for(lambda: not json.loads(self.run_client(self.agent, 'status', '--json').stdout)['connected'],
                 base.TIMEOUT, message='the agent to notice the host left')
        proc = self.run_client(self.agent, 'broadcast', 'anyone?', check=False)
        self.assertEqual(1, proc.returncode, proc.stderr)
        self.assertIn('host_unavailable', proc.stderr)

    def _lines(self, proc) -> queue.Queue:
        """Read a process's stdout lines in a thread into a queue."""
        lines: queue.Queue = queue.Queue()

        def pump() -> None:
            for line in proc.stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        return lines
