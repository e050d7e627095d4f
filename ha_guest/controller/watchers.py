"""Watch the watchers: silent compute agents and never-registered guests, announced once across controllers.

Every controller records the state reports it receives and beats to its
peers on the peer-sync fanout (what it learned, the open alarms it holds).
The leader (watch_leader.py) alone opens and closes alarms and tells the
sinks; the others adopt the leader's open alarms from its beats, so the one
that takes over (a leader killed, a controller restarted) knows what was
announced and announces nothing twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Optional, Protocol

from oslo_config import cfg
from oslo_log import log as logging

from ha_guest.controller import host_faults as hf
from ha_guest.controller.agent_watch import AgentRecord, AgentTable
from ha_guest.controller.host_faults import WatchAlarms
from ha_guest.controller.watch_leader import LeaderView

LOG = logging.getLogger(__name__)

#: Peer-sync API version that carries beats (sync_watch).
SYNC_WATCH_VERSION = '1.2'
#: Beats a peer may miss before it counts as gone.
PEER_TIMEOUT_BEATS = 3
#: Beats a (re)started controller listens before it may decide.
SETTLE_BEATS = 2


class WatchPeers(Protocol):
    """The peer-sync casts of the watchers (ha_guest.rpc.ControllerSyncAPI)."""

    origin: str

    def can_send_version(self, version: str) -> bool: ...

    def sync_watch(self, beat: dict[str, Any], retry: Optional[int] = None) -> None: ...


class WatchSinks(Protocol):
    """Where the leader's events go (SinkDispatcher.watch_event)."""

    def watch_event(self, event_type: str, payload: dict[str, Any]) -> None: ...


class Watchers:
    """Tracks compute agents' reports and unregistered instances; the leader raises and clears their alarms."""

    def __init__(self, conf: cfg.ConfigOpts, origin: str, sinks: WatchSinks, peers: Optional[WatchPeers],
                 clock: Callable[[], float] = time.time) -> None:
        self.conf = conf
        self.origin = origin
        self.sinks = sinks
        self.peers = peers
        self.clock = clock
        opts = conf.controller
        self.beat_interval_s = float(opts.peer_beat_interval_s)
        self.agents = AgentTable()
        self.alarms = WatchAlarms()
        self.leader = LeaderView(origin, clock(), SETTLE_BEATS * self.beat_interval_s + 0.1, self.beat_interval_s,
                                 PEER_TIMEOUT_BEATS * self.beat_interval_s)
        self._seq = 0
        self._next_beat = 0.0
        self._full = False
        self._heard_leader = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._can_beat = peers is None or peers.can_send_version(SYNC_WATCH_VERSION)
        if not self._can_beat:
            LOG.warning('agent watch off: [rpc] controller_sync_version_cap is below %s, so this controller '
                        'cannot agree with its peers on who announces silent agents', SYNC_WATCH_VERSION)

    # -- life cycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread that beats and (when leading) decides; the settling starts now."""
        self.leader.started_at = self.clock()
        if self._can_beat and self._thread is None:
            self._thread = threading.Thread(target=self._run, name='agent-watch', daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        period = min(1.0, self.beat_interval_s)
        while not self._stop.is_set():
            woken = self._wake.wait(period)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.tick(force_beat=woken)
            except Exception:
                LOG.exception('agent watch: tick failed')

    def tick(self, force_beat: bool = False) -> None:
        """Decide (when leading), then beat if one is due."""
        now = self.clock()
        if self._can_beat and self.leader.leads(now):
            self.decide(now)
        if force_beat or now >= self._next_beat:
            self._next_beat = now + self.beat_interval_s
            self.beat(now)

    # -- inputs ----------------------------------------------------------------------------------------

    def report_state(self, report: Any) -> None:
        """A compute agent's state report reached this controller: its agent is alive."""
        host = self.agents.observe(report, self.clock())
        if host is not None and self.alarms.get((hf.SCOPE_HOST, host)) is not None:
            # An agent back from silence: decide or tell the leader now, not at the next beat.
            self._wake.set()

    def sync_watch(self, origin: str, beat: Any) -> None:
        """A peer's beat: merge what it learned; adopt the open alarms of a leader."""
        if origin == self.origin or not isinstance(beat, dict) or not isinstance(beat.get('seq'), int):
            return
        now = self.clock()
        if not self.leader.heard(origin, beat['seq'], bool(beat.get('ready')), now):
            return  # a replayed or late beat: what it says is known already
        self.agents.merge(beat.get('agents'))
        alarms = beat.get('alarms')
        if not isinstance(alarms, list) or self.leader.leads(now):
            return
        if beat.get('leads'):
            self._heard_leader = True
            added, dropped = self.alarms.adopt(alarms)
        elif not self._heard_leader:
            # No leader heard since this controller started (it may have died just before): learn
            # what the others hold, so that taking over announces nothing twice.
            added, dropped = self.alarms.adopt(alarms, replace=False)
        else:
            return
        if added or dropped:
            LOG.info('agent watch: %d alarm(s) learned from %s, %d closed by it', added, origin, dropped)

    def sync_request(self, origin: str) -> None:
        """A peer (re)started: send it everything known at the next beat."""
        if origin != self.origin:
            self._full = True
            self._wake.set()

    # -- listings --------------------------------------------------------------------------------------

    def list_host_faults(self, host: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the open host faults (of one host if given)."""
        return [a for a in self.alarms.list(hf.SCOPE_HOST) if host is None or a['host'] == host]

    def list_unregistered(self, host: Optional[str] = None) -> list[dict[str, Any]]:
        """Return every instance whose guest has not registered: since, overdue, and its alarm if announced."""
        now = self.clock()
        timeout = float(self.conf.controller.registration_timeout_s)
        items: list[dict[str, Any]] = []
        for name in self.agents.hosts():
            record = self.agents.get(name)
            if record is None or (host is not None and name != host):
                continue
            for instance_uuid, since in record.unregistered.items():
                alarm = self.alarms.get((hf.SCOPE_INSTANCE, instance_uuid))
                items.append({'instance_uuid': instance_uuid, 'host': name, 'since': since,
                              'overdue': now - since >= timeout, 'alarm': alarm})
        items.sort(key=lambda item: item['since'])
        return items

    # -- the leader's decisions ----------------------------------------------------------------------

    def down_time(self, record: Optional[AgentRecord]) -> float:
        """Return how long ``record``'s agent may stay silent: the option, or more for a slow reporter."""
        down = float(self.conf.controller.agent_down_time_s)
        if record is not None and record.interval_s:
            # Two missed reports, plus the beat that carries a peer's news: never a false alarm.
            down = max(down, 2 * record.interval_s + self.beat_interval_s)
        return down

    def decide(self, now: float) -> None:
        """Open and close alarms (the leader only); tell the sinks and the peers at once."""
        events = []
        with self.alarms.lock:
            for host in self.agents.hosts():
                record = self.agents.get(host)
                if record is not None:
                    events += self._decide_host(record, now)
            events += self._decide_unregistered(now)
            for alarm in events:
                self.sinks.watch_event(hf.event_type(alarm), alarm)
        for alarm in events:
            level = logging.WARNING if alarm['state'] == hf.STATE_ACTIVE else logging.INFO
            # An unregistered guest's alarm is about one instance; a silent agent's about a host.
            LOG.log(level, 'agent watch: %s %s', hf.event_type(alarm), _describe(alarm),
                    instance_uuid=alarm.get('instance_uuid'))
        if events:
            self._wake.set()  # the peers learn at once

    def _decide_host(self, record: AgentRecord, now: float) -> list[dict[str, Any]]:
        key = (hf.SCOPE_HOST, record.host)
        alarm = self.alarms.get(key)
        if alarm is None:
            # An agent this controller never saw since it started gets the full grace too.
            deadline = max(record.seen_at, self.leader.started_at) + self.down_time(record)
            if now <= deadline:
                return []
            alarm = hf.host_fault(record.host, now, record.seen_at)
            self.alarms.open(alarm)
            return [alarm]
        last = alarm.get('last_report_at')
        if last is None or record.seen_at > float(last):
            closed = self.alarms.close(key, record.seen_at, hf.CLEARED_BY_REPORTED)
            return [closed] if closed is not None else []
        return []

    def _decide_unregistered(self, now: float) -> list[dict[str, Any]]:
        opts = self.conf.controller
        events = []
        listed: dict[str, tuple[str, float]] = {}
        for host in self.agents.hosts():
            record = self.agents.get(host)
            for instance_uuid, since in (record.unregistered.items() if record is not None else ()):
                listed[instance_uuid] = (host, since)
        for alarm in self.alarms.list(hf.SCOPE_INSTANCE):
            where = listed.get(alarm['instance_uuid'])
            if self.agents.get(alarm['host']) is None:
                continue  # nothing heard of that host yet (a new leader): no news is no clear
            if where is None or where[0] != alarm['host']:
                reason = self.agents.left_reason(alarm['host'], alarm['instance_uuid'])
                closed = self.alarms.close((hf.SCOPE_INSTANCE, alarm['instance_uuid']), now, reason)
                events += [closed] if closed is not None else []
        if not opts.alarm_unregistered:
            return events
        for instance_uuid, (host, since) in listed.items():
            if now - since < opts.registration_timeout_s:
                continue
            alarm = hf.unregistered_alarm(instance_uuid, host, since, now)
            if self.alarms.open(alarm):
                events.append(alarm)
        return events

    # -- beats -------------------------------------------------------------------------------------------

    def beat(self, now: float) -> None:
        """Cast this controller's beat: liveness, what it learned, and (leading) the open alarms."""
        if self.peers is None or not self._can_beat:
            return
        full, self._full = self._full, False
        entries = self.agents.full() if full else self.agents.take_delta()
        leads = self.leader.leads(now)
        self._seq += 1
        beat = {'seq': self._seq, 'ready': self.leader.ready(now), 'leads': leads, 'full': full,
                'agents': entries, 'alarms': self.alarms.list()}
        try:
            # retry=1: a broker outage must not stall the decisions; the next beat carries the news.
            self.peers.sync_watch(beat, retry=1)
        except Exception as exc:
            if not full:
                self.agents.requeue(entries)
            self._full = self._full or full
            LOG.warning('agent watch: beat not sent (%s: %s)', type(exc).__name__, exc)


def _describe(alarm: dict[str, Any]) -> str:
    if alarm['kind'] == hf.KIND_AGENT_SILENT:
        return 'host %s (incident %s, last report at %s)' % (alarm['host'], alarm['incident_id'],
                                                            alarm.get('last_report_at'))
    return 'instance %s on host %s (incident %s, unregistered since %s)' % (
        alarm['instance_uuid'], alarm['host'], alarm['incident_id'], alarm.get('since'))
