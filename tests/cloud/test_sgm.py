"""Server group messaging between two servers of one real Nova server group, guest console to guest console."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from typing import Any

from ha_guest.nova import specs
from ha_guest.testing.guest_console import GuestConsole
from ha_guest.testing.waiting import wait_for
from tests.cloud import base

#: Seconds one ``client listen --count 1`` may block guest B's console waiting for an event.
LISTEN_S = 30.0
#: Seconds for one broadcast to reach B (the first may wait for the controller's Nova lookup).
BROADCAST_TIMEOUT_S = 120.0


def _out(console: GuestConsole, since: int) -> list[str]:
    """The output lines of ``client`` commands since the mark (``ha-guest-ctl: out <seq> <line>``)."""
    found = []
    for line in console.lines(since=since):
        if line.startswith('ha-guest-ctl: out '):
            found.append(line.split(' ', 3)[3] if line.count(' ') >= 3 else '')
    return found


class TestCloudServerGroupMessaging(base.CloudTestCase):
    """Broadcast, group status and peer notifications through Nova's server group and notifications."""

    def _group(self) -> str:
        resp = self.conn.compute.post('/os-server-groups', microversion='2.64',
                                      json={'server_group': {'name': 'ha-%s' % uuid.uuid4().hex[:6],
                                                             'policy': 'affinity'}})
        self.assertEqual(200, resp.status_code, resp.text)
        group_id = str(resp.json()['server_group']['id'])
        self.addCleanup(self.conn.compute.delete, '/os-server-groups/%s' % group_id)
        return group_id

    def _listen_for(self, console: GuestConsole, wanted: str, timeout: float, start: Any = None) -> float:
        """Run ``client listen --count 1`` on the console until an event line contains ``wanted``.

        ``start`` (called once the first listen runs) makes the event happen; returns the monotonic time
        the wanted line was read.
        """
        deadline = time.monotonic() + timeout
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            started = False
            while time.monotonic() < deadline:
                mark = console.mark()
                listening = pool.submit(console.send, 'client listen --count 1', LISTEN_S + 10)
                if not started and start is not None:
                    # The client's Python takes seconds to start under emulation: let it listen first.
                    time.sleep(5.0)
                    start()
                    started = True
                listening.result()
                got = time.monotonic()
                if any(wanted in line for line in _out(console, mark)):
                    return got
        raise AssertionError('no event with %r on %s within %.0fs' % (wanted, console.domain, timeout))

    def test_broadcast_status_and_peer_notification(self) -> None:
        flavor = self._flavor(**{specs.HEARTBEAT: 'true', specs.SERVER_GROUP_MESSAGING: 'true'})
        group = self._group()
        image = self._images()
        a = self._boot(flavor, image, group=group)
        b = self._boot(flavor, image, group=group)
        for server in (a, b):
            self._wait_registered(server['id'])
            self._wait_healthy(server['id'])
        members = self.conn.compute.get('/os-server-groups/%s' % group, microversion='2.64').json()
        self.assertEqual(sorted([a['id'], b['id']]), sorted(members['server_group']['members']))

        with self._console(a) as console_a, self._console(b) as console_b:
            # Broadcast A -> B: B's listener prints "broadcast from <A's uuid>: <text>".
            text = 'hello-%s' % uuid.uuid4().hex[:8]
            sent: list[float] = []

            def broadcast() -> None:
                sent.append(time.monotonic())
                console_a.send('broadcast %s' % text, timeout=60)

            got = self._listen_for(console_b, 'broadcast from %s: %s' % (a['id'], text), BROADCAST_TIMEOUT_S,
                                   start=broadcast)
            broadcast_s = got - sent[0]

            # Group status from B: both members, B marked self, A active and running.
            mark = console_b.mark()
            console_b.send('client group-status --timeout 10', timeout=60)
            rows = _out(console_b, mark)
            row_a = [r for r in rows if r.startswith(a['id'])]
            row_b = [r for r in rows if r.startswith(b['id'])]
            self.assertEqual(1, len(row_a), rows)
            self.assertIn('active', row_a[0])
            self.assertEqual(1, len(row_b), rows)
            self.assertIn('(self)', row_b[0])

            # Stop A through Nova: B hears of it from Nova's versioned notification via the controller.
            stopped: list[float] = []

            def stop() -> None:
                stopped.append(time.monotonic())
                self._action(a['id'], {'os-stop': None})

            got = self._listen_for(console_b, 'notification: member %s instance.power_off.end' % a['id'],
                                   base.STATE_TIMEOUT_S, start=stop)
            notified = [line for line in console_b.lines() if 'instance.power_off.end' in line]
            self.assertIn('state=stopped', notified[-1])
            self._wait_status(a['id'], 'SHUTOFF')
            shutoff = time.monotonic()
            self.figures['sgm'] = {'broadcast_console_to_console_s': round(broadcast_s, 2),
                                   'stop_request_to_peer_notification_s': round(got - stopped[0], 2),
                                   'stop_request_to_shutoff_seen_s': round(shutoff - stopped[0], 2)}
        wait_for(lambda: self._instance_state(b['id']) == 'healthy', 60, interval=1.0,
                 message='B to stay healthy')
