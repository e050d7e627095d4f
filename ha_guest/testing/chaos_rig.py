"""The chaos drills' rig: real controller and compute agent processes, protocol guests, a listener, a stub Nova.

Everything a scenario of ha_guest.testing.chaos starts comes from here, on a
broker of its choice, with topics of its own (so runs never see each other's
messages): ha-guest-controller and ha-guest-compute processes that a scenario
may kill -9 and start again, guest helper processes (ha_guest.testing.bench_guests)
whose guests it hangs and resumes, a notification listener on the controller's
notifications topic (arrival time of every event) and, for recovery, the
Keystone/Nova stub (ha_guest.testing.openstack_stub) that records every action.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Optional

from ha_guest.testing.bench_procs import BenchError, FaultListener, GuestHelper, Service
from ha_guest.testing.messaging import check_broker, make_conf, service_config
from ha_guest.testing.waiting import wait_for

RAISED, CLEARED = 'ha_guest.heartbeat.fault.raised', 'ha_guest.heartbeat.fault.cleared'
HOST_RAISED, HOST_CLEARED = 'ha_guest.host.fault.raised', 'ha_guest.host.fault.cleared'
GUESTS_PER_HELPER = 250
#: oslo.messaging's recommended options for a RabbitMQ cluster (oslo.messaging 18.3).
CLUSTER_RABBIT_OPTIONS = {
    'rabbit_quorum_queue': True, 'rabbit_transient_quorum_queue': True, 'use_queue_manager': True,
    'rabbit_stream_fanout': True, 'rabbit_qos_prefetch_count': 10,
    # Quorum queues can't be auto-deleted; heartbeats find a dead or hung node's connections.
    'amqp_auto_delete': False, 'heartbeat_timeout_threshold': 4, 'heartbeat_rate': 2,
}


class ChaosError(AssertionError):
    """A drill could not go on (a process died, something did not happen in time)."""


class Recorder(FaultListener):
    """FaultListener that counts each message once, however many of the drill's listeners got it."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()
        self._seen_lock = threading.Lock()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any) -> None:
        """Record (arrival, event type, payload + "_sent_at") the first time a message id is seen."""
        message_id = (metadata or {}).get('message_id')
        if message_id is not None:
            with self._seen_lock:
                if message_id in self._seen:
                    return
                self._seen.add(message_id)
        if isinstance(payload, dict):
            # When the controller sent it (the notifier's UTC time stamp): "at the controller", without
            # the time this listener, on the same two cores, took to get to it.
            payload = dict(payload, _sent_at=sent_at(metadata))
        super().info(ctxt, publisher_id, event_type, payload, metadata)


def sent_at(metadata: Any) -> Optional[float]:
    """Epoch time of a notification's metadata time stamp (oslo.messaging: naive UTC text), None if absent."""
    text = (metadata or {}).get('timestamp')
    if not isinstance(text, str):
        return None
    try:
        stamp = datetime.datetime.strptime(text, '%Y-%m-%d %H:%M:%S.%f')
    except ValueError:
        return None
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


class Rig:
    """One scenario's processes and observers on one broker; ``cleanup()`` stops everything."""

    def __init__(self, url: str, tmp: str, name: str, rabbit: Optional[dict[str, Any]] = None,
                 recovery: bool = False, listen_url: Optional[str] = None) -> None:
        try:
            check_broker(url)
        except ConnectionError as exc:
            raise ChaosError(str(exc)) from None
        self.url = url
        self.tmp = os.path.join(tmp, name[:8])  # short: AF_UNIX paths have 108 bytes
        os.makedirs(self.tmp, exist_ok=True)
        self.folder = os.path.join(self.tmp, 'ch')
        os.makedirs(self.folder, exist_ok=True)
        self.state_file = os.path.join(self.tmp, 'compute-state.json')
        suffix = '%s_%s' % (name, uuid.uuid4().hex[:8])
        sinks = ['log', 'notifications'] + (['recovery'] if recovery else [])
        self.groups: dict[str, dict[str, Any]] = {
            'rpc': {'controller_topic': 'chaos_controller_' + suffix,
                    'controller_sync_topic': 'chaos_sync_' + suffix,
                    'compute_topic': 'chaos_compute_' + suffix},
            'controller': {'fault_sinks': sinks},
            'sink_notifications': {'topics': ['chaos_notifications_' + suffix]},
            # Where helper B's recovery intents go: a topic of this run's own.
            'recovery': {'intent_topic': 'chaos_intent_' + suffix},
        }
        if rabbit:
            self.groups['oslo_messaging_rabbit'] = dict(rabbit)
            self.groups['oslo_concurrency'] = {'lock_path': os.path.join(self.tmp, 'locks')}
        self.services: dict[str, Service] = {}
        self.helpers: list[GuestHelper] = []
        self.owner: dict[str, GuestHelper] = {}
        self.stub: Any = None
        self.listener = Recorder()
        self._servers: list[Any] = []
        self._transports: list[Any] = []
        self._starts: collections.Counter[str] = collections.Counter()
        self._listen(listen_url or url)

    # -- observers --------------------------------------------------------------------------------

    def _listen(self, url: str) -> None:
        from ha_guest.cmd import prepare_process

        prepare_process()  # before oslo.messaging, as the service mains do
        from ha_guest import rpc

        # Only what the listener needs (the services' files may hold options other helpers add).
        rabbit = {k: v for k, v in self.groups.get('oslo_messaging_rabbit', {}).items() if k != 'use_queue_manager'}
        self.conf = make_conf(self.url, 'chaos', {'rpc': self.groups['rpc'], 'oslo_messaging_rabbit': rabbit,
                                                  'sink_notifications': self.groups['sink_notifications']})
        self.transport = rpc.get_notification_transport(self.conf, url)
        self.listen(self.transport, None)

    def listen(self, transport: Any, pool: Optional[str]) -> None:
        """One more listener on the notifications topic (a pool of its own: it gets every message too)."""
        import oslo_messaging

        targets = [oslo_messaging.Target(topic=topic) for topic in self.conf.sink_notifications.topics]
        server = oslo_messaging.get_notification_listener(transport, targets, [self.listener], pool=pool)
        server.start()
        self._servers.append(server)

    def listen_on(self, url: str) -> None:
        """A listener on another broker URL (e.g. a cluster node that is not about to fail)."""
        from ha_guest import rpc

        transport = rpc.get_notification_transport(self.conf, url)
        self._transports.append(transport)
        self.listen(transport, 'chaos-%s' % uuid.uuid4().hex[:8])

    def events(self, event_type: str) -> list[tuple[float, dict[str, Any]]]:
        """(arrival wall time, payload) of every notification of ``event_type`` so far."""
        return self.listener.of(event_type)

    def with_stub(self, policy: str = 'reboot') -> Any:
        """Start the Keystone/Nova stub; the controllers' recovery sink acts through it."""
        from ha_guest.testing.openstack_stub import OpenStackStub, nova_api_options

        self.stub = OpenStackStub()
        self.stub.start()
        self.policy = policy
        self.groups['nova_api'] = nova_api_options(self.stub)
        return self.stub

    # -- processes --------------------------------------------------------------------------------

    def start_guests(self, count: int, interval_ms: int = 100) -> list[str]:
        """Start ``count`` protocol guests in a few helper processes; return their instance UUIDs."""
        helpers = max(1, min(4, math.ceil(count / GUESTS_PER_HELPER)))
        shares = [count // helpers + (1 if i < count % helpers else 0) for i in range(helpers)]
        new = []
        for share in shares:
            index = len(self.helpers)
            helper = GuestHelper(index, self.folder, share, interval_ms,
                                 os.path.join(self.tmp, 'guests-%d.log' % index))
            self.helpers.append(helper)
            new.append(helper)
        instances = []
        for helper in new:
            for instance in helper.read_ready():
                self.owner[instance] = helper
                instances.append(instance)
                if self.stub is not None:
                    from ha_guest.nova import specs

                    self.stub.add_server({specs.HEARTBEAT: 'true', specs.RECOVERY: self.policy},
                                         uuid=instance, host='chaos-compute')
        return instances

    def start_controller(self, name: str = 'controller', **groups: dict[str, Any]) -> Service:
        """Start (or start again) an ha-guest-controller; return once it answers list_faults."""
        import oslo_messaging

        from ha_guest import rpc

        host = 'chaos-%s' % name
        # Its own journal, the same one each time it starts again: what it told the sinks before a kill -9.
        journal = {'announce_journal': os.path.join(self.tmp, '%s-announced.jsonl' % name)}
        groups = dict(groups, controller=dict(journal, **groups.get('controller', {})))
        config = service_config(os.path.join(self.tmp, '%s.conf' % name), self.url, host,
                                self._merged(groups))
        service = self._start(name, 'ha-guest-controller', 'ha_guest.cmd.controller', config)
        transport = rpc.get_rpc_transport(self.conf)
        api = rpc.ControllerAPI(self.conf, transport, timeout=1)

        def answers() -> bool:
            service.check()
            if 'listening on topic' not in service.tail(200):
                return False
            try:
                api.list_faults(None)  # any controller: this one's server name is its own (host + a suffix)
            except oslo_messaging.MessagingTimeout:
                return False
            return True

        try:
            wait_for(answers, 60.0, 0.1, '%s to answer list_faults' % name, error=ChaosError)
        finally:
            transport.cleanup()
        return service

    def start_compute(self, name: str = 'compute', wait_registered: bool = True,
                      **groups: dict[str, Any]) -> Service:
        """Start (or start again) the ha-guest-compute of this rig's guests (same state file every time)."""
        compute = {'discovery_driver': 'directory', 'directory_path': self.folder, 'directory_poll_s': 0.1,
                   'state_file': self.state_file}
        compute.update(groups.pop('compute', {}))
        config = service_config(os.path.join(self.tmp, '%s.conf' % name), self.url, 'chaos-compute',
                                self._merged(dict(groups, compute=compute)))
        since = self.connections()
        service = self._start(name, 'ha-guest-compute', 'ha_guest.cmd.compute', config)
        if wait_registered:
            self.wait_registered(service, since)
        return service

    def list_faults(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The active faults a controller lists (any controller answers)."""
        from ha_guest import rpc

        transport = rpc.get_rpc_transport(self.conf)
        try:
            return list(rpc.ControllerAPI(self.conf, transport, timeout=timeout).list_faults(None))
        finally:
            transport.cleanup()

    def connections(self) -> dict[int, int]:
        """Connections the guests of each helper accepted so far (a restarted agent connects again)."""
        return {h.index: h.ask('status')['connections'] for h in self.helpers}

    def wait_registered(self, service: Service, since: Optional[dict[int, int]] = None,
                        timeout: Optional[float] = None) -> float:
        """Wait until every guest registered (and, given ``since``, was connected again); return the seconds."""
        t0 = time.monotonic()
        base = since or {}

        def registered() -> bool:
            service.check()
            for helper in self.helpers:
                status = helper.ask('status')
                if status['registered'] < len(helper.uuids):
                    return False
                if status['connections'] - base.get(helper.index, 0) < len(helper.uuids):
                    return False
            return True

        wait_for(registered, timeout or 30.0 + len(self.owner) / 40.0, 0.2, 'every guest to register',
                 error=ChaosError)
        return time.monotonic() - t0

    def _merged(self, groups: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        merged = {group: dict(values) for group, values in self.groups.items()}
        for group, values in groups.items():
            merged.setdefault(group, {}).update(values)
        return merged

    def _start(self, name: str, title: str, module: str, config: str) -> Service:
        old = self.services.get(name)
        if old is not None and old.proc.poll() is None:
            raise ChaosError('%s is still running' % name)
        self._starts[name] += 1
        log = os.path.join(self.tmp, '%s-%d.log' % (name, self._starts[name]))
        service = self.services[name] = Service(title, module, config, log)
        return service

    def kill9(self, name: str) -> float:
        """kill -9 a service's whole process group; return the wall time of the kill."""
        service = self.services[name]
        at = time.time()
        try:
            os.killpg(service.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        service.proc.wait(10.0)
        return at

    # -- guests -----------------------------------------------------------------------------------

    def hang(self, instances: list[str]) -> dict[str, float]:
        """Make guests stop answering (one command per helper, sent to all helpers before reading)."""
        return self._command('hang', 'hung', instances)

    def resume(self, instances: list[str]) -> dict[str, float]:
        """Make hung guests answer again."""
        return self._command('resume', 'resumed', instances)

    def _command(self, command: str, key: str, instances: list[str]) -> dict[str, float]:
        by_helper: dict[int, list[str]] = collections.defaultdict(list)
        for instance in instances:
            by_helper[self.owner[instance].index].append(instance)
        asked = [h for h in self.helpers if h.index in by_helper]
        for helper in asked:
            helper.write('%s %s' % (command, ' '.join(by_helper[helper.index])))
        done: dict[str, float] = {}
        for helper in asked:
            done.update(helper.read()[key])
        return done

    def stalls(self) -> dict[str, list[tuple[float, float]]]:
        """Each guest's helper's own stalls so far: (wall time it ended, seconds), its guests could not answer."""
        by_helper = {h.index: [tuple(s) for s in h.ask('status').get('stalls', [])] for h in self.helpers}
        return {instance: by_helper[helper.index] for instance, helper in self.owner.items()}

    def answered(self) -> int:
        """Challenges answered by all guests so far."""
        return sum(h.ask('status')['answered'] for h in self.helpers)

    def check(self) -> None:
        """Raise ChaosError if a running service has died."""
        for service in self.services.values():
            try:
                service.check()
            except BenchError as exc:
                raise ChaosError(str(exc)) from None

    def cleanup(self) -> None:
        """Stop the services, the helpers, the listener and the stub."""
        for service in self.services.values():
            try:
                if service.proc.poll() is None:
                    os.killpg(service.pid, signal.SIGCONT)
                service.stop(5.0)
            except (OSError, BenchError):
                pass
        for helper in self.helpers:
            helper.stop()
        for server in self._servers:
            server.stop()
            server.wait()
        for transport in [self.transport, *self._transports]:
            transport.cleanup()
        if self.stub is not None:
            self.stub.stop()

    def logs(self, lines: int = 20) -> str:
        """The last lines of every service's log (for a failed drill's report)."""
        return '\n'.join('--- %s (%s) ---\n%s' % (name, s.log_path, s.tail(lines)) for name, s in self.services.items())


@contextlib.contextmanager
def running(drill: Any, name: str, url: Optional[str] = None, **kwargs: Any) -> Iterator[Rig]:
    """A Rig for one part of a drill, cleaned up after; its logs' tails go to stderr when the drill fails."""
    rig = Rig(url or drill.url, drill.tmp, name, **kwargs)
    try:
        yield rig
    except BaseException:
        drill.log(rig.logs())
        raise
    else:
        if drill.verdict.failures:
            drill.log(rig.logs())
    finally:
        rig.cleanup()
