"""The demo's server group messaging scene: an active/standby pair on two compute hosts.

db-active runs on demo-compute-1, db-standby on demo-compute-2; both are in
the Nova server group db-pair, their flavor enables server group messaging.
The standby listens (the guest library's ``listen``); the active broadcasts
"I am taking over" with ``ha-guest-client broadcast``; Nova powers the
active off (its channel goes, the stand-in Nova says so and publishes
``instance.power_off.end`` in Nova's versioned-notification format); the
standby learns it through its channel and asks ``group-status``. Everything
between the two guests is the real path: guest agent -> compute agent ->
controller (routing from the stand-in Nova's server group API) -> the other
compute agent -> guest agent.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from typing import Any, Optional

from ha_guest.demo.guests import Guests
from ha_guest.demo.services import HostServices
from ha_guest.demo.timeline import DemoFailed, Timeline
from ha_guest.guest.client import AgentClient, ClientError, EventStream
from ha_guest.testing.nova_notifications import NovaInstance, NovaNotifier
from ha_guest.testing.openstack_stub import OpenStackStub, configure_nova_api

ACTIVE, STANDBY = 'db-active', 'db-standby'
ACTIVE_UUID, STANDBY_UUID = '3b0e6d2a-7c41-4f8e-9a15-d2c4e6f80a11', '8f2a4c6e-1d3b-4a5f-b7c9-e0f1a2b3c412'
HOST_1, HOST_2 = 'demo-compute-1', 'demo-compute-2'
SGM_FLAVOR = {'heartbeat': True, 'server_group_messaging': True}
TAKEOVER = 'I am taking over'
#: Bound of every wait of this scene.
WAIT_S = 10.0
#: The Nova topic of the scene; the controller's [sgm] listener consumes it.
NOVA_TOPIC = 'versioned_notifications'


class SgmScene:
    """Owns the stand-in Nova, the second compute node's guests and the standby's listener."""

    def __init__(self, tmp: str, interval_ms: int, tl: Timeline) -> None:
        self.tl = tl
        self.nova = OpenStackStub()
        self.guests = Guests(tmp, interval_ms, prefix='node2-')
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self._stream: Optional[EventStream] = None
        self._notifier: Optional[NovaNotifier] = None

    def controller_groups(self, exchange: str) -> dict[str, dict[str, Any]]:
        """The controller's [sgm] options: Nova's notifications on ``exchange``."""
        return {'sgm': {'enabled': True, 'notification_topics': [NOVA_TOPIC], 'notification_exchange': exchange,
                        'notification_pool': 'ha_guest-sgm-demo'}}

    def configure_controller(self, conf: Any) -> None:
        """Point the controller's [nova_api] at the stand-in Nova (before the controller starts)."""
        configure_nova_api(conf, self.nova)

    def start_nova(self) -> None:
        """Start the stand-in Nova (before the controller, which reads its address from the options)."""
        self.nova.start()

    def setup(self, services: HostServices, node1: Guests) -> None:
        """Create the pair in Nova, start the guests and the second compute agent."""
        self.nova.add_server({'ha_guest:heartbeat': 'true', 'ha_guest:server_group_messaging': 'true'},
                             uuid=ACTIVE_UUID, host=HOST_1)
        self.nova.add_server({'ha_guest:heartbeat': 'true', 'ha_guest:server_group_messaging': 'true'},
                             uuid=STANDBY_UUID, host=HOST_2)
        self.nova.add_group([ACTIVE_UUID, STANDBY_UUID], name='db-pair')
        node1.add(ACTIVE, ACTIVE_UUID, SGM_FLAVOR)
        self.guests.start()
        self.guests.add(STANDBY, STANDBY_UUID, SGM_FLAVOR)
        services.start_more_compute(HOST_2, self.guests.channel_dir)
        self._notifier = NovaNotifier('', topics=[NOVA_TOPIC], transport=services.notification_transport)
        self.node1 = node1

    def run(self) -> None:
        """The story: takeover broadcast, the active powered off, the standby asks for the group's state."""
        tl = self.tl
        tl.heading('server group messaging: an active/standby pair on two compute hosts')
        tl.say('Nova stand-in: server group db-pair = %s (%s on %s), %s (%s on %s); flavor '
               'ha_guest:server_group_messaging=true' % (ACTIVE, ACTIVE_UUID, HOST_1, STANDBY, STANDBY_UUID, HOST_2))
        self._wait_sessions()
        self._listen()
        t0 = self.tl.now()
        self._client(self.node1, ACTIVE, 'broadcast', TAKEOVER)
        tl.say('%s: ha-guest-client broadcast %r' % (ACTIVE, TAKEOVER), t0)
        at, event = self._next('broadcast')
        if event['sender'] != ACTIVE_UUID or event['payload'] != TAKEOVER.encode():
            raise DemoFailed('%s heard %r' % (STANDBY, event))
        tl.say('%s heard it: sender %s (stamped by %s from the channel it came on), payload %r, through '
               '%s -> controller -> %s (the client\'s start-up included)' % (
                   STANDBY, event['sender'], HOST_1, event['payload'].decode(), HOST_1, HOST_2), at, after=t0)
        self._power_off_active()
        self._group_status()

    def _wait_sessions(self) -> None:
        deadline = time.monotonic() + WAIT_S
        for guests, name in ((self.node1, ACTIVE), (self.guests, STANDBY)):
            while not self._status(guests, name).get('connected'):
                if time.monotonic() > deadline:
                    raise DemoFailed('%s has no session with its compute agent' % name)
                time.sleep(0.05)
        self.tl.say('%s on %s and %s on %s are connected to their compute agents' % (ACTIVE, HOST_1, STANDBY,
                                                                                    HOST_2))

    def _listen(self) -> None:
        self._stream = AgentClient(self.guests.guests[STANDBY].api_socket, timeout=WAIT_S).listen()
        stream = self._stream

        def pump() -> None:
            try:
                for event in stream:
                    self.events.put((self.tl.now(), event))
            except ClientError:
                pass  # closed at cleanup

        threading.Thread(target=pump, name='demo-standby-listener', daemon=True).start()
        self.tl.say('%s listens for its group (the guest library\'s listen)' % STANDBY)

    def _power_off_active(self) -> None:
        tl = self.tl
        t0 = tl.now()
        # Nova powers the instance off: the guest stops, its channel goes, Nova publishes the event.
        self.node1.signal(ACTIVE, signal.SIGTERM)
        self.node1.wait_exit(ACTIVE)
        self.node1.emulator.remove(ACTIVE_UUID)
        self.nova.change_server(ACTIVE_UUID, vm_state='stopped', power_state=4)
        assert self._notifier is not None
        self._notifier.instance_event(NovaInstance(ACTIVE_UUID, host=HOST_1, vm_state='stopped',
                                                   power_state='shutdown'), 'instance.power_off.end')
        t1 = tl.now()
        tl.say('Nova powers %s off: its guest stops, its channel goes, instance.power_off.end is published on '
               'the %s topic' % (ACTIVE, NOVA_TOPIC), t0)
        at, event = self._next('notification')
        if (event['member'], event['state'], event['power_state']) != (ACTIVE_UUID, 'stopped', 'shutdown'):
            raise DemoFailed('%s was told %r' % (STANDBY, event))
        tl.say('%s learned it through its channel: member %s, %s, state %s, power state %s' % (
            STANDBY, ACTIVE, event['event_type'], event['state'], event['power_state']), at, after=t1)

    def _group_status(self) -> None:
        t0 = self.tl.now()
        result = self._client(self.guests, STANDBY, 'group-status')
        self.tl.say('%s: ha-guest-client group-status' % STANDBY, t0)
        for line in result.stdout.splitlines():
            self.tl.detail(line)
        members = AgentClient(self.guests.guests[STANDBY].api_socket, timeout=WAIT_S).group_status(5.0)
        states = {m['uuid']: (m['state'], m['power_state'], m['self']) for m in members}
        if states != {ACTIVE_UUID: ('stopped', 'shutdown', False), STANDBY_UUID: ('active', 'running', True)}:
            raise DemoFailed('group status of %s is %r' % (STANDBY, states))

    def _client(self, guests: Guests, name: str, *args: str) -> Any:
        result = guests.client(name, *args)
        if result.returncode != 0:
            raise DemoFailed('ha-guest-client %s for %s failed (%d): %s' % (' '.join(args), name, result.returncode,
                                                                          result.stderr.strip()))
        return result

    @staticmethod
    def _status(guests: Guests, name: str) -> dict[str, Any]:
        try:
            return AgentClient(guests.guests[name].api_socket, timeout=1.0).agent_status()
        except ClientError:
            return {}

    def _next(self, kind: str) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + WAIT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DemoFailed('%s got no %s within %.0f s' % (STANDBY, kind, WAIT_S))
            try:
                at, event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event.get('event') == kind:
                return at, event

    def cleanup(self) -> None:
        """Stop the listener, the second node's guests and the stand-in Nova; never raises."""
        if self._stream is not None:
            self._stream.close()
        if self._notifier is not None:
            self._notifier.close()
        self.guests.stop()
        try:
            self.nova.stop()
        except Exception:  # noqa: BLE001 - cleanup goes on
            pass
