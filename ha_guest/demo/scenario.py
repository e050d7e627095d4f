"""The demo's story: four guests heartbeat, one hangs, one reports itself unhealthy, both recover, one leaves."""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from typing import Any, Optional

from ha_guest.compute.heartbeat_monitor import GuestState
from ha_guest.demo.guests import Guests
from ha_guest.demo.services import HostServices
from ha_guest.demo.sgm_scene import SgmScene
from ha_guest.demo.timeline import DemoFailed, Recorder, Seen, Timeline
from ha_guest.rpc import transport as rpc_transport
from ha_guest.sinks import base as sinks_base
from ha_guest.testing import wait_for

INSTANCES = (
    ('guest-1', '6f1c2a0e-1b7d-4e52-9a51-0c3f5e7d9a01'),
    ('guest-2', 'a83d5b92-4c1e-4f07-8b6a-2d9e1f4c7b02'),
    ('guest-3', 'c5e7f104-9d2a-4b38-a6c1-7e0b3d5f8c03'),
    ('guest-4', 'e2b94d71-3a6f-4c85-b0d2-9f1e7a3c6d04'),
)
HUNG, SICK, LEAVER = 'guest-2', 'guest-3', 'guest-4'
APP_REASON = 'database connection lost'
#: Bound of every wait for an expected event.
WAIT_S = 10.0
#: How long heartbeats are shown flowing, and how long a clean exit is watched for a false fault.
FLOW_S = 1.5
QUIET_S = 1.0
RAISED, CLEARED, VITRAGE = 'raised', 'cleared', 'vitrage'
_KINDS = {sinks_base.EVENT_FAULT_RAISED: RAISED, sinks_base.EVENT_FAULT_CLEARED: CLEARED}


class Demo:
    """One demo run; ``cleanup()`` releases everything whatever happened."""

    def __init__(self, tmp: str, transport_url: str, interval_ms: int, use_vitrage: bool, tl: Timeline) -> None:
        self.tmp = tmp
        self.transport_url = transport_url
        self.interval_ms = interval_ms
        self.use_vitrage = use_vitrage
        self.tl = tl
        self.rec = Recorder()
        self.log_file = os.path.join(tmp, 'demo.log')
        self.guests = Guests(tmp, interval_ms)
        self.names = {instance: name for name, instance in INSTANCES}
        self.uuids = dict(INSTANCES)
        self.vitrage: Any = None
        self.services: Optional[HostServices] = None
        self.latencies: list[tuple[str, list[Optional[float]]]] = []
        self.sgm = SgmScene(tmp, interval_ms, tl)

    # -- set-up ------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Vitrage (optional), the controller, Nova's instances, the guests and the compute agent."""
        tl = self.tl
        tl.heading('setting up (transport %s)' % self.transport_url)
        vitrage_topics = None
        if self.use_vitrage:
            vitrage_topics = [self._vitrage_graph()]
        else:
            logging.basicConfig(filename=self.log_file, level=logging.INFO,
                                format='%(asctime)s %(levelname)s %(name)s: %(message)s')
            tl.say('Vitrage left out (--no-vitrage): faults end at the controller and its notifications')
        notification_transport = self.vitrage.notification_transport if self.vitrage else None
        # The stand-in Nova publishes on the services' notification transport, so on its exchange.
        exchange = (notification_transport.conf.control_exchange if notification_transport
                    else rpc_transport.CONTROL_EXCHANGE)
        self.sgm.start_nova()
        self.services = services = HostServices(
            self.tmp, self.transport_url, self.guests.channel_dir, vitrage_topics, notification_transport,
            controller_groups=self.sgm.controller_groups(exchange))
        self.sgm.configure_controller(services.controller_conf)
        services.tap_notifications(self._on_notification)
        services.start_controller()
        opts = services.controller_conf
        tl.say('ha-guest-controller (its real manager, in this process): RPC topic %s, fault sinks %s'
               % (opts.rpc.controller_topic, ', '.join(opts.controller.fault_sinks)))
        if self.vitrage:
            self._nova_instances()
        self.guests.start()
        for name, instance in INSTANCES:
            self.guests.add(name, instance)
        tl.say('channel emulator (stands in for QEMU): one channel per instance, host sockets <uuid>.sock in %s'
               % self.guests.channel_dir)
        tl.say('started %d ha-guest-agent processes asking for %d ms: %s' % (
            len(INSTANCES), self.interval_ms,
            ', '.join('%s pid %d' % (g.name, g.proc.pid) for g in self.guests.guests.values() if g.proc)))
        services.start_compute()
        opts = services.compute_conf.compute
        tl.say('ha-guest-compute (its real manager, in this process): directory discovery, tick %d ms, '
               'miss threshold %d' % (opts.tick_ms, opts.miss_threshold))
        seen: dict[str, float] = {}

        def registered() -> bool:
            for uuid_, item in services.compute_view().items():
                if item.state == GuestState.HEALTHY and uuid_ not in seen:
                    seen[uuid_] = time.monotonic()
                    tl.say('%s registered with the compute agent: interval %d ms, healthy'
                           % (self.names.get(uuid_, uuid_), item.interval_ms))
            return len(seen) == len(INSTANCES)

        wait_for(registered, WAIT_S, 0.02, 'every guest to register with the compute agent', error=DemoFailed)

    def _vitrage_graph(self) -> str:
        t0 = self.tl.now()
        try:
            from ha_guest.vitrage.embedded import EmbeddedVitrage
        except ImportError as exc:
            raise DemoFailed('Vitrage is not installed here (%s): run the demo with `tox -e demo`, which '
                             'installs vitrage==15.0.1, or pass --no-vitrage' % exc) from None
        rabbit = self.transport_url.startswith('rabbit')
        topic = 'vitrage_notifications' + ('_' + uuid.uuid4().hex[:8] if rabbit else '')
        sections = {'oslo_messaging_rabbit': {'amqp_auto_delete': 'true', 'heartbeat_timeout_threshold': '0'}}
        self.vitrage = EmbeddedVitrage(os.path.join(self.tmp, 'vitrage'), self.transport_url, [topic],
                                       log_file=self.log_file, sections=sections if rabbit else {})
        self.vitrage.configure()
        self.vitrage.subscribe(lambda view: self.rec.record(VITRAGE, view.instance_uuid, view=view))
        self.vitrage.start()
        self.tl.say('Vitrage 15 entity graph in this process: its notification listener, processor and scenario '
                    'evaluator; ha_guest datasource, values file and template ha_guest_heartbeat loaded',
                    after=t0)
        return topic

    def _nova_instances(self) -> None:
        assert self.services is not None
        for name, instance in INSTANCES:
            self.vitrage.watch(instance)
            self.vitrage.nova_instance_created(instance, self.services.compute_host, name)
        for name, instance in INSTANCES:
            self.rec.wait(VITRAGE, instance, 0, WAIT_S, '%s in the Vitrage entity graph' % name,
                          where=lambda s: s.data['view'].state == 'ACTIVE')
        self.tl.say('Nova stand-in: instance.create.end for %s on %s -> Vitrage\'s nova.instance datasource: '
                    '4 instances, state ACTIVE' % (', '.join(self.uuids), self.services.compute_host))

    def _on_notification(self, event_type: str, payload: dict[str, Any], t: float) -> None:
        self.rec.record(_KINDS[event_type], str(payload.get('instance_uuid')), t, payload=payload)

    # -- the story ---------------------------------------------------------------------------------

    def heartbeats(self) -> None:
        """Let heartbeats flow; show what the compute agent counted."""
        assert self.services is not None
        self.tl.heading('heartbeats flowing for %.1f s' % FLOW_S)
        mark, before = self.rec.mark(), self.services.compute_view()
        time.sleep(FLOW_S)
        after = self.services.compute_view()
        for name, instance in INSTANCES:
            a, b = after[instance], before[instance]
            self.tl.detail('%s: %d challenges, %d answered in time, %d missed, slowest answer %.1f ms' % (
                name, a.challenges - b.challenges, a.responses - b.responses, a.misses - b.misses, a.max_rtt_ms))
            if a.responses == b.responses:
                raise DemoFailed('%s: no heartbeat answers while they should flow' % name)
        if self.rec.since(mark, RAISED):
            raise DemoFailed('a fault was raised while every guest was healthy: %s' % self.rec.since(mark, RAISED))
        self.tl.say('controller list_faults: %s' % (self.services.api.list_faults(None) or 'none'))

    def hang(self) -> None:
        """SIGSTOP one agent: a hung guest."""
        self.tl.heading('%s hangs' % HUNG)
        mark, t0 = self.rec.mark(), self.tl.now()
        self.guests.signal(HUNG, signal.SIGSTOP)
        self.tl.say('%s: ha-guest-agent frozen with SIGSTOP' % HUNG, t0)
        self._fault_chain(HUNG, mark, t0, 'missed', 'hang (SIGSTOP)')

    def unhealthy(self) -> None:
        """An application in the guest reports itself unhealthy."""
        self.tl.heading('%s reports itself unhealthy' % SICK)
        mark, t0 = self.rec.mark(), self.tl.now()
        proc = self.guests.client(SICK, 'report', 'unhealthy', '--source', 'app', '--reason', APP_REASON)
        if proc.returncode != 0:
            raise DemoFailed('ha-guest-client report unhealthy exited %d: %s' % (proc.returncode, proc.stderr))
        self.tl.say('%s: ha-guest-client report unhealthy --source app --reason %r (client ran %.0f ms)'
                    % (SICK, APP_REASON, (self.tl.now() - t0) * 1000.0), t0)
        self._fault_chain(SICK, mark, t0, 'unhealthy', 'unhealthy report (client)')
        faults = self.services.api.list_faults(None) if self.services else []
        self.tl.say('controller list_faults: %s' % ', '.join(
            '%s %s' % (self.names.get(f['instance_uuid'], '?'), f['kind']) for f in faults))
        self.show_graph()

    def show_graph(self) -> None:
        """Print what the Vitrage entity graph says about every instance."""
        if not self.vitrage:
            return
        self.tl.say('Vitrage entity graph now:')
        for name, instance in INSTANCES:
            view = self.vitrage.view(instance)
            if view is None:
                continue
            alarms = ', '.join('%s: "%s" %s' % (a.vitrage_type, a.name, a.severity) for a in view.alarms)
            self.tl.detail('%-8s %-7s %-12s %s' % (name, view.state, 'marked down' if view.marked_down else '',
                                                   alarms or 'no alarm'))

    def _fault_chain(self, name: str, mark: int, t0: float, kind: str, label: str) -> None:
        instance = self.uuids[name]
        raised = self.rec.wait(RAISED, instance, mark, WAIT_S, 'a %s fault of %s at the controller' % (kind, name))
        fault = raised.data['payload']
        if fault['kind'] != kind:
            raise DemoFailed('%s: expected a %s fault, got %s' % (name, kind, fault['kind']))
        detected = self.tl.from_wall(fault['detected_at'])
        lines = [(detected, 'compute agent: %s FAULT %s (incident %s): %s' % (
                      name, kind, fault['incident_id'][:8], fault['reason'])),
                 (raised.t, 'controller: fault raised; its %s notification received' % sinks_base.EVENT_FAULT_RAISED)]
        row: list[Optional[float]] = [detected - t0, raised.t - t0]
        if self.vitrage:
            seen = self._vitrage_wait(instance, mark, 'the alarm and ERROR state of %s in Vitrage' % name,
                                      lambda v: bool(v.alarms_of('ha_guest')) and v.state == 'ERROR'
                                      and v.marked_down and bool(v.alarms_of('vitrage')))
            view = seen.data['view']
            ours, deduced = view.alarms_of('ha_guest')[0], view.alarms_of('vitrage')[0]
            lines.append((seen.t, 'vitrage: alarm "%s" (%s) on instance %s' % (ours.name, ours.severity, name)))
            lines.append((seen.t, 'vitrage: template -> instance %s %s, marked down, alarm "%s" (%s)' % (
                name, view.state, deduced.name, deduced.severity)))
            row.append(seen.t - t0)
        self._print(lines, t0)
        self.latencies.append((label + ' -> fault', row))

    def _print(self, lines: list[tuple[float, str]], t0: float) -> None:
        """Print what several parts saw in the order it happened (each part is told in its own thread)."""
        for t, text in sorted(lines, key=lambda line: line[0]):
            self.tl.say(text, t, after=t0)

    def recover(self) -> None:
        """SIGCONT the hung agent; the application reports healthy again."""
        self.tl.heading('recovery')
        mark, t0 = self.rec.mark(), self.tl.now()
        self.guests.signal(HUNG, signal.SIGCONT)
        self.tl.say('%s: ha-guest-agent continued with SIGCONT' % HUNG, t0)
        self._clear_chain(HUNG, mark, t0, 'SIGCONT')
        mark, t0 = self.rec.mark(), self.tl.now()
        proc = self.guests.client(SICK, 'report', 'healthy', '--source', 'app')
        if proc.returncode != 0:
            raise DemoFailed('ha-guest-client report healthy exited %d: %s' % (proc.returncode, proc.stderr))
        self.tl.say('%s: ha-guest-client report healthy --source app' % SICK, t0)
        self._clear_chain(SICK, mark, t0, 'healthy report (client)')
        faults = self.services.api.list_faults(None) if self.services else []
        self.tl.say('controller list_faults: %s' % (faults or 'none'))

    def _clear_chain(self, name: str, mark: int, t0: float, label: str) -> None:
        instance = self.uuids[name]
        cleared = self.rec.wait(CLEARED, instance, mark, WAIT_S, 'the fault of %s to clear' % name)
        payload = cleared.data['payload']
        recovered = self.tl.from_wall(payload['cleared_at'])
        lines = [(recovered, 'compute agent: %s answers healthy again -> recovered' % name),
                 (cleared.t, 'controller: fault cleared (%s); its %s notification received' % (
                     payload['cleared_by'], sinks_base.EVENT_FAULT_CLEARED))]
        row: list[Optional[float]] = [recovered - t0, cleared.t - t0]
        if self.vitrage:
            seen = self._vitrage_wait(instance, mark, 'the alarm of %s to go in Vitrage' % name,
                                      lambda v: not v.alarms and v.state == 'ACTIVE' and not v.marked_down)
            lines.append((seen.t, 'vitrage: alarms gone, instance %s ACTIVE again, no longer marked down' % name))
            row.append(seen.t - t0)
        self._print(lines, t0)
        self.latencies.append((label + ' -> clear', row))

    def _vitrage_wait(self, instance: str, mark: int, what: str, check: Any) -> Seen:
        return self.rec.wait(VITRAGE, instance, mark, WAIT_S, what, where=lambda s: check(s.data['view']))

    def clean_exit(self) -> None:
        """SIGTERM one agent: it says goodbye (exit), which is no fault."""
        assert self.services is not None
        services, instance = self.services, self.uuids[LEAVER]
        self.tl.heading('%s leaves cleanly' % LEAVER)
        mark, t0 = self.rec.mark(), self.tl.now()
        self.guests.signal(LEAVER, signal.SIGTERM)
        code = self.guests.wait_exit(LEAVER)
        self.tl.say('%s: ha-guest-agent got SIGTERM, sent exit and ended with status %d' % (LEAVER, code), t0)
        if code != 0:
            raise DemoFailed('%s: the agent exited with status %d after SIGTERM' % (LEAVER, code))

        def exited() -> bool:
            stats = services.compute_view().get(instance)
            return stats is not None and stats.state == GuestState.EXITED

        wait_for(exited, WAIT_S, 0.02, 'the compute agent to see the exit of %s' % LEAVER, error=DemoFailed)
        self.tl.say('compute agent: %s exited, monitoring ended' % LEAVER, after=t0)
        time.sleep(QUIET_S)
        if self.rec.since(mark, RAISED):
            raise DemoFailed('a clean exit raised a fault: %s' % self.rec.since(mark, RAISED))
        if services.api.list_faults(None, instance):
            raise DemoFailed('the controller lists a fault for %s after its clean exit' % LEAVER)
        text = 'no fault at the controller %.0f s later' % QUIET_S
        if self.vitrage:
            view = self.vitrage.view(instance)
            if view is None or view.alarms or view.state != 'ACTIVE':
                raise DemoFailed('Vitrage shows %s after a clean exit' % (view,))
            text += ', no alarm in Vitrage (instance %s)' % view.state
        self.tl.say(text)

    def server_group_messaging(self) -> None:
        """The active/standby scene on a second compute host (sgm_scene.py)."""
        assert self.services is not None
        self.sgm.setup(self.services, self.guests)
        self.sgm.run()

    def stop_guests(self) -> None:
        """SIGTERM the other agents: each exits 0 and raises nothing."""
        self.tl.heading('shutting down')
        mark = self.rec.mark()
        names = [name for name, _ in INSTANCES if name != LEAVER]
        for name in names:
            self.guests.signal(name, signal.SIGTERM)
        codes = {name: self.guests.wait_exit(name) for name in names}
        self.tl.say('SIGTERM to %s: exit status %s' % (', '.join(names), ', '.join(map(str, codes.values()))))
        if any(codes.values()):
            raise DemoFailed('an agent exited with a non-zero status: %s' % codes)
        if self.rec.since(mark, RAISED):
            raise DemoFailed('stopping the guests raised a fault: %s' % self.rec.since(mark, RAISED))

    def cleanup(self) -> None:
        """Stop every process and thread this run started; safe after any failure."""
        self.sgm.cleanup()
        self.guests.stop()
        if self.services is not None:
            self.services.stop()
        if self.vitrage is not None:
            try:
                self.vitrage.stop()
            except Exception:  # noqa: BLE001 - cleanup goes on
                logging.getLogger(__name__).exception('stopping Vitrage failed')
