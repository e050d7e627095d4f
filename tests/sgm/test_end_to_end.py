"""Server group messaging end to end: guest agents on two compute hosts, controllers, RabbitMQ, Nova events.

Everything a guest sees goes through the real path: ha-guest-client -> the
guest agent -> emulated virtio-serial channel -> ha-guest-compute -> RabbitMQ
-> ha-guest-controller (stub Nova for lookups) -> RabbitMQ -> the peers'
ha-guest-compute -> channel -> guest agent -> ``ha-guest-client listen``.
Nova's state changes are emitted through Nova's own notifier and objects
(tests/sgm/nova_emit.py).
"""

from __future__ import annotations

import base64
import collections
import json
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

from testtools import content

from ha_guest.guest.client import AgentClient
from ha_guest.protocol import GUEST, ChannelCodec, Envelope, Error, HelloAck, HelloRequest, negotiate, sgm
from ha_guest.testing import wait_for
from tests.functional.base import Agent
from tests.functional.rabbit import TIMEOUT
from tests.sgm import nova_emit
from tests.sgm.cloud import SgmTestCase

H1, H2 = SgmTestCase.HOSTS
#: How long a test waits to be sure that something does not arrive.
QUIET_S = 1.0


class Listener:
    """A subscription through the guest library (ha_guest.guest.client); its events in a queue."""

    def __init__(self, agent: Agent) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        # listen() returns once the agent acknowledged the subscription: nothing after that is missed.
        self.stream = AgentClient(agent.api_socket, timeout=TIMEOUT).listen()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self.stream:
                self.events.put(event)
        except Exception:  # noqa: BLE001 - closed at cleanup
            pass

    def close(self) -> None:
        self.stream.close()

    def next(self, what: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Return the next event of kind ``what`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('no %s event within %.0fs' % (what, timeout))
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event.get('event') == what:
                return event

    def quiet(self, what: str, wait: float = QUIET_S) -> list[dict[str, Any]]:
        """Return the events of kind ``what`` that arrive within ``wait`` seconds."""
        got = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if event.get('event') == what:
                got.append(event)
        return got


class GroupTestCase(SgmTestCase):
    """One group spread over two hosts (members A, C on H1, B, D on H2; D without SGM) and a lone E."""

    def setUp(self) -> None:
        super().setUp()
        self.a = self.add_instance(H1)
        self.b = self.add_instance(H2)
        self.c = self.add_instance(H1, heartbeat=False)  # SGM only
        self.d = self.add_instance(H2, sgm=False)  # heartbeat only, but in the group
        self.e = self.add_instance(H2)  # another group
        self.group = self.stub.add_group([self.a, self.b, self.c, self.d])
        self.other_group = self.stub.add_group([self.e])
        self.start_controllers()
        for host in self.HOSTS:
            self.start_compute(host)
        self.agents: dict[str, Agent] = {}
        for host, instance in ((H1, self.a), (H2, self.b), (H1, self.c), (H2, self.d), (H2, self.e)):
            self.agents[instance] = self.start_guest(host, instance)
        for agent in self.agents.values():
            self.wait_session(agent)
        self.listeners = {instance: self.listen(instance) for instance in self.agents}

    def start_controllers(self) -> None:
        self.start_controller()

    def listen(self, instance: str) -> Listener:
        """Subscribe to the SGM events of ``instance``'s guest agent."""
        listener = Listener(self.agents[instance])
        self.addCleanup(listener.close)
        return listener

    def broadcast(self, instance: str, text: str) -> None:
        self.run_client(self.agents[instance], 'broadcast', text)

    def group_status(self, instance: str) -> subprocess.CompletedProcess[str]:
        return self.run_client(self.agents[instance], 'group-status', '--json', '--timeout', '5', check=False)


class TestBroadcast(GroupTestCase):

    def test_reaches_every_sgm_peer_and_nobody_else(self) -> None:
        self.broadcast(self.a, 'I am taking over')
        for peer in (self.b, self.c):
            event = self.listeners[peer].next('broadcast')
            self.assertEqual((self.a, b'I am taking over'), (event['sender'], event['payload']))
        for outsider in (self.a, self.d, self.e):  # the sender, a member without SGM, another group
            self.assertEqual([], self.listeners[outsider].quiet('broadcast'))

    def test_one_senders_broadcasts_keep_their_order(self) -> None:
        for n in range(8):
            self.broadcast(self.c, 'n=%d' % n)
        got = [self.listeners[self.a].next('broadcast')['payload'] for _ in range(8)]
        self.assertEqual([b'n=%d' % n for n in range(8)], got)

    def test_a_guest_cannot_name_the_sender(self) -> None:
        # A hand-made guest on E's channel writes a broadcast claiming to be A; E's agent is stopped first.
        # F, a second member of E's group, listens.
        listener_e_peer = self.listen_new_member_of_other_group()
        self.agents[self.e].signal(signal.SIGKILL)
        self.agents[self.e].wait()
        guest_socket = '%s/%s.sock' % (self.hosts[H2].guest_dir, self.e)

        def forge() -> bool:
            # The emulator takes one guest at a time: until it saw the killed agent go, it refuses.
            forged = ForgingGuest(guest_socket)
            self.addCleanup(forged.close)
            try:
                forged.broadcast_as(self.a, b'forged')
            except (OSError, AssertionError):
                return False
            return True

        wait_for(forge, TIMEOUT, message='a forged broadcast to be written')
        event = listener_e_peer.next('broadcast')
        self.assertEqual((self.e, b'forged'), (event['sender'], event['payload']))
        for member in (self.b, self.c):
            self.assertEqual([], self.listeners[member].quiet('broadcast', 0.5))

    def listen_new_member_of_other_group(self) -> Listener:
        """Start F, a second member of E's group, and its listener."""
        f = self.add_instance(H1)
        self.stub.add_to_group(self.other_group, f)
        self.agents[f] = self.start_guest(H1, f)
        self.wait_session(self.agents[f])
        nova_emit.emit('server_group.add_member', f, H1,
                       group=self.other_group.uuid, members=[self.e, f])
        return self.listen(f)

    def test_heartbeat_only_member_is_refused(self) -> None:
        result = self.group_status(self.d)
        self.assertEqual(1, result.returncode, result.stdout)
        self.assertIn('not_enabled', result.stderr)


class TestStatusAndNotifications(GroupTestCase):

    def test_status_lists_every_member_and_one_self(self) -> None:
        result = self.group_status(self.b)
        self.assertEqual(0, result.returncode, result.stderr)
        members = {m['uuid']: m for m in json.loads(result.stdout)}
        self.assertEqual({self.a, self.b, self.c, self.d}, set(members))
        self.assertEqual([self.b], [uuid for uuid, m in members.items() if m['self']])
        self.assertEqual(('active', 'running'), (members[self.d]['state'], members[self.d]['power_state']))

    def test_power_off_reaches_the_peers(self) -> None:
        self.group_status(self.a)  # the controller has the group cached: only the notification can change it
        nova_emit.emit('instance.power_off.end', self.b, H2,
                       vm_state='stopped', power_state='shutdown')
        for peer in (self.a, self.c):
            event = self.listeners[peer].next('notification')
            self.assertEqual({'event': 'notification', 'member': self.b, 'event_type': 'instance.power_off.end',
                              'state': 'stopped', 'power_state': 'shutdown'}, event)
        for outsider in (self.b, self.d, self.e):  # itself, no SGM, another group
            self.assertEqual([], self.listeners[outsider].quiet('notification', 0.5))
        members = {m['uuid']: m for m in json.loads(self.group_status(self.a).stdout)}
        self.assertEqual(('stopped', 'shutdown'), (members[self.b]['state'], members[self.b]['power_state']))

    def test_sgm_only_instance_is_not_heartbeat_monitored(self) -> None:
        wait_for(lambda: 'not enabled' in self.agents[self.c].log(), TIMEOUT,
                 message='the SGM-only guest to learn that heartbeat is off')
        self.agents[self.c].signal(signal.SIGSTOP)  # hung: it would be a fault if it were watched
        self.agents[self.a].signal(signal.SIGSTOP)  # the control: a heartbeat guest hung at the same time
        api = self.rabbit.controller_api()
        wait_for(lambda: api.list_faults(None, self.a), TIMEOUT, message='a fault for the hung heartbeat guest')
        time.sleep(QUIET_S)
        self.assertEqual([], api.list_faults(None, self.c))
        self.agents[self.a].signal(signal.SIGCONT)
        self.agents[self.c].signal(signal.SIGCONT)


class TestTwoControllers(GroupTestCase):

    def start_controllers(self) -> None:
        self.start_controller('sgm-controller-1')
        self.start_controller('sgm-controller-2')

    def test_each_notification_once_and_every_controller_knows(self) -> None:
        for controller in self.controllers:  # both cache the group before the change
            answer = self.rabbit.controller_api(server=controller.host).sgm_status(None, self.a)
            self.assertEqual(4, len(answer['members']))
        nova_emit.emit('instance.power_off.end', self.b, H2,
                       vm_state='stopped', power_state='shutdown')
        self.assertEqual(self.b, self.listeners[self.a].next('notification')['member'])
        self.assertEqual([], self.listeners[self.a].quiet('notification'))  # exactly once
        for controller in self.controllers:
            api = self.rabbit.controller_api(server=controller.host)

            def knows(api: Any = api) -> bool:
                members = {m['uuid']: m for m in api.sgm_status(None, self.a)['members']}
                return members[self.b]['state'] == 'stopped'

            wait_for(knows, TIMEOUT, message='%s to know that B stopped' % controller.host)

    def test_broadcasts_flow_through_either_controller(self) -> None:
        for n in range(6):
            self.broadcast(self.b, 'round %d' % n)
        got = [self.listeners[self.a].next('broadcast')['payload'] for _ in range(6)]
        self.assertEqual([b'round %d' % n for n in range(6)], got)


class TestBadInput(GroupTestCase):

    def test_floods_are_refused_and_nobody_elses_heartbeat_suffers(self) -> None:
        # E (alone in its group) turns hostile: its agent is replaced by a hand-made guest that floods.
        self.agents[self.e].signal(signal.SIGKILL)
        self.agents[self.e].wait()
        guest_socket = '%s/%s.sock' % (self.hosts[H2].guest_dir, self.e)
        hostile: list[ForgingGuest] = []

        def connect() -> bool:
            guest = ForgingGuest(guest_socket)
            self.addCleanup(guest.close)
            try:
                guest.take_session()
            except (OSError, AssertionError):
                return False
            hostile.append(guest)
            return True

        wait_for(connect, TIMEOUT, message='the hostile guest to take the channel')
        guest = hostile[0]
        big = base64.b64encode(b'x' * 3051).decode()
        oversized = guest.codec.encode(sgm.Broadcast(b'')).replace(b'"payload":""', b'"payload":"%s"' % big.encode())
        broadcast = guest.codec.encode(sgm.Broadcast(b'y' * 3050))
        # First a burst the guest's byte and line budgets hold whatever way the channel cuts it into reads
        # (26 frames, about 107 KB of the 128 KB byte burst): every frame is parsed, so the 3051-byte payload
        # is refused and the broadcasts past the SGM burst of 20 are nacked.
        burst = [oversized] + [broadcast] * 25
        self.assertLess(sum(map(len, burst)), 120 * 1024)
        guest.sock.sendall(b''.join(burst))

        def counts(got: list[Any]) -> tuple[collections.Counter[str], collections.Counter[str]]:
            return (collections.Counter(m.reason for m in got if isinstance(m, sgm.Nack)),
                    collections.Counter(m.code for m in got if isinstance(m, Error)))

        got = guest.received(TIMEOUT, until=lambda got: counts(got)[0]['rate_limited'] >= 1
                             and counts(got)[1]['invalid_message'] >= 1)
        reasons, codes = counts(got)
        # 25 broadcasts against a burst of 20 (refilled at 10 a second meanwhile)
        self.assertGreaterEqual(reasons['rate_limited'], 1, got[:40])
        self.assertEqual(1, codes['invalid_message'], got[:40])  # the 3051-byte payload
        # Then a flood far past the budgets: it is dropped unread, read by read.
        frames = [broadcast] * 300 + [guest.codec.encode(sgm.StatusRequest()) for _ in range(300)]
        try:
            guest.sock.sendall(b''.join(frames))
        except TimeoutError:
            pass  # past its budget the host stops reading: the kernel and the channel hold the rest
        flooded = guest.received(2.0)
        reasons, codes = counts(flooded)
        self.addDetail('hostile-guest-got', content.text_content(
            '26 frames then 600; got nacks %s, errors %s, %d in all after the flood'
            % (dict(reasons), dict(codes), len(flooded))))
        self.assertGreater(codes['rate_limited'], 0, flooded[:20])  # frames beyond the guest's budgets
        # Frames past the guest's budgets are dropped unread, and error replies have a budget of their
        # own: far fewer answers than frames.
        self.assertLess(len(flooded), 300, collections.Counter(type(m).__name__ for m in flooded))
        # Meanwhile the heartbeat guests were never missed, and SGM between the others still works.
        faulted = {fault['instance_uuid'] for fault in self.rabbit.controller_api().list_faults(None)}
        self.assertEqual(set(), faulted & {self.a, self.b, self.c, self.d})
        # The hostile guest itself took over a registered session and answers no challenge: it stays
        # watched (a repeated hello_ack ends nothing) and is reported, flood or not.
        self.assertIn(self.e, faulted)
        self.broadcast(self.a, 'still here')
        self.assertEqual(b'still here', self.listeners[self.b].next('broadcast')['payload'])


class ForgingGuest:
    """A hand-made guest: takes over a channel's session and writes whatever frames a test wants."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(2.0)
        self.codec = ChannelCodec(GUEST)

    def take_session(self) -> None:
        """Ask for a hello (the agent that acknowledged the last one is gone) and acknowledge it."""
        self.sock.sendall(self.codec.encode(HelloRequest()))
        hello = self._wait_hello()  # the guest codec adopts the hello's session
        version = negotiate(hello.message.version_min, hello.message.version_max)
        self.codec.version = version
        self.sock.sendall(self.codec.encode(HelloAck(version, 'forger/1')))

    def broadcast_as(self, sender: str, payload: bytes) -> None:
        self.take_session()
        frame = self.codec.encode(sgm.Broadcast(payload)).rstrip(b'\n')
        data = json.loads(frame)
        data['data']['sender'] = sender  # not a field of broadcast: the host must ignore it
        self.sock.sendall(json.dumps(data, separators=(',', ':')).encode() + b'\n')

    def received(self, wait: float, until: Optional[Callable[[list[Any]], bool]] = None) -> list[Any]:
        """Return what the host wrote within ``wait`` seconds (messages and protocol errors), or once ``until``."""
        got: list[Any] = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not (until is not None and until(got)):
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            got.extend(item.message if isinstance(item, Envelope) else item for item in self.codec.feed(data))
        return got

    def _wait_hello(self) -> Envelope:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            for item in self.codec.feed(self.sock.recv(65536)):
                if isinstance(item, Envelope) and item.message.TYPE == 'hello':
                    return item
        raise AssertionError('no hello from the compute agent')

    def close(self) -> None:
        self.sock.close()
