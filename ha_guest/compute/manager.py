"""The compute agent: one event loop owning every channel, monitor and timer.

Threads and what they own:

* the loop thread: every GuestChannel (socket), every GuestMonitor, the
  TickScheduler driven by a single ``loop.call_at`` tick every ``tick_ms``,
  the state report timer. Nothing else touches them;
* the discovery driver's thread(s): they call the listener methods below,
  which hand each call to the loop with ``call_soon_threadsafe``;
* the reporter thread: oslo.messaging calls to the controller, fed by a
  bounded queue (reporter.py);
* the server group messaging sender's threads (sgm_sender.py): broadcasts
  and status calls to the controllers; answers come back to the loop, where
  the SgmRelay (sgm_relay.py) writes them to the channels;
* the state store's writer thread (state_store.py), which also hands the
  reports of new incidents, recoveries and exits to the reporter once the
  state file holds them (outbox.py);
* when the state file was lost, a thread asking the controllers for this
  host's open faults (relearn.py);
* the RPC server's threads (endpoint.ComputeEndpoint), which also only
  schedule work on the loop.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, TypeVar

import pbr.version
from oslo_config import cfg

from ha_guest.compute.agent_totals import AgentTotals
from ha_guest.compute.channel import GuestChannel
from ha_guest.compute.discovery.base import LEGACY_FEATURES, DiscoveryDriver, Features
from ha_guest.compute.discovery.loader import channel_settings, load_discovery, with_discovery_grace
from ha_guest.compute.endpoint import ComputeEndpoint
from ha_guest.compute.fastpath import read_buffer
from ha_guest.compute.flap_damping import DampingPolicy
from ha_guest.compute.heartbeat_monitor import EventKind, GuestMonitor, HeartbeatPolicy, MonitorEvent
from ha_guest.compute.incident_reports import FAULT, IncidentReports
from ha_guest.compute.instance import Instance, InstanceStats
from ha_guest.compute.outbox import Outbox
from ha_guest.compute.relearn import Relearn, relearn
from ha_guest.compute.reporter import ControllerClient, Reporter, reporter_options
from ha_guest.compute.restore import RESTORE_GRACE_S, Restorer
from ha_guest.compute.scheduler import TickScheduler
from ha_guest.compute.sgm_relay import SgmRelay
from ha_guest.compute.sgm_sender import SgmControllerClient, SgmSender
from ha_guest.compute.state_records import instance_record, report_item
from ha_guest.compute.state_store import UNREADABLE, Record, StateStore
from ha_guest.rpc.compute_api import COMPUTE_API_VERSION

LOG = logging.getLogger(__name__)

#: New channels connected per tick: an agent that starts with a thousand guests
#: brings them up over half a second instead of in one burst that would stall
#: the loop (and the first challenges) for everyone.
CONNECTS_PER_TICK = 20

T = TypeVar("T")
AGENT_VERSION = pbr.version.VersionInfo("ha_guest").version_string()
__all__ = ["ComputeEndpoint", "ComputeManager", "InstanceStats"]


class ComputeManager:
    """Runs the compute agent; also the discovery listener (thread-safe)."""

    def __init__(self, conf: cfg.ConfigOpts, controller: ControllerClient, host: Optional[str] = None,
                 discovery: Optional[Callable[[cfg.ConfigOpts, Any], DiscoveryDriver]] = None,
                 sgm_client: Optional[SgmControllerClient] = None) -> None:
        """``sgm_client`` defaults to ``controller`` (ha_guest.rpc's ControllerAPI serves both)."""
        opts = conf.compute
        self.conf = conf
        self.host = host or conf.host
        self.tick_s = opts.tick_ms / 1000.0
        self.policy = HeartbeatPolicy(opts.miss_threshold, opts.min_interval_ms,
                                      max(opts.min_interval_ms, opts.max_interval_ms), spread=True,
                                      late_s=max(2 * self.tick_s, 0.02))
        self.settings = channel_settings(opts)
        self.controller = controller
        self.reporter = Reporter(controller, queue_size=opts.report_queue_size, on_sent=self._on_sent,
                                 **reporter_options(conf))
        self.store = StateStore(opts.state_file, min_interval_s=opts.state_file_min_interval_s)
        self.started_at = time.time()
        self.scheduler = TickScheduler()
        self._buffer = read_buffer()  # shared by every channel: the loop reads one socket at a time
        self.instances: Dict[str, Instance] = {}
        self.loop = asyncio.new_event_loop()
        self._discovery_factory = discovery or load_discovery
        self._discovery: Optional[DiscoveryDriver] = None
        self._thread = threading.Thread(target=self._run_loop, name="ha-guest-compute-loop", daemon=True)
        self._to_connect: Deque[GuestChannel] = collections.deque()
        self._next_tick = 0.0
        self._tick_handle: Optional[asyncio.TimerHandle] = None
        self._report_handle: Optional[asyncio.TimerHandle] = None
        self._relearn: Optional[Relearn] = None  # asking the controllers, while the state file was lost
        self._stopped = False
        self.outbox = Outbox(self.loop, self.store, self.reporter, self._records)
        self.sgm_sender = SgmSender(
            sgm_client or controller,  # type: ignore[arg-type]
            self._sgm_sender_failed,
            queue_size=opts.sgm_queue_size, timeout_s=opts.sgm_timeout_s,
            status_workers=opts.sgm_status_workers, batch_window_s=opts.sgm_batch_window_ms / 1000.0)
        self.sgm_relay = SgmRelay(self.loop, self.host, self.sgm_sender, self._channel_of)
        self.incidents = IncidentReports(
            self.host, self.outbox.put, DampingPolicy(opts.flap_hold_down_s, opts.flap_max_hold_down_s,
                                                    opts.flap_half_life_s),
            self.loop.time, lambda at: time.time() - (self.loop.time() - at))  # events carry loop time
        self.restorer = Restorer(self.host, self.incidents, self.scheduler, self.outbox, opts.restart_grace_s)
        self._loaded: Dict[str, Record] = {}
        # Answer latencies only when someone scrapes them ([metrics] listen_port).
        self.totals = AgentTotals(latency="metrics" in conf and conf.metrics.listen_port is not None)

    # -- lifecycle (any thread but the loop's) ------------------------------------------------

    def start(self) -> None:
        """Restore the saved state (or re-learn it), start the threads and the discovery driver."""
        loaded = self.store.load()
        self._loaded = loaded.records
        if loaded.records:
            LOG.info("restored %d instance(s) from the %s state file %s", len(loaded.records), loaded.source,
                     self.store.path)
        self.reporter.start()
        self.sgm_sender.start()
        self.store.start()
        self._thread.start()
        self.call(self._start_on_loop)
        if loaded.source == UNREADABLE:  # neither generation readable: ask the controllers
            self._relearn = relearn(self.controller, self.host,
                                    lambda faults: self.loop.call_soon_threadsafe(self._relearned, faults))
        self._discovery = self._discovery_factory(self.conf, self)
        # Before the driver reports any channel.
        self.settings = with_discovery_grace(self.settings, self.conf.compute, self._discovery)
        self._discovery.start()
        LOG.info("compute agent started on host %s: %s discovery, tick %d ms, miss threshold %d, channel loss "
                 "grace %.2f s", self.host, self.conf.compute.discovery_driver, self.conf.compute.tick_ms,
                 self.policy.miss_threshold, self.settings.channel_loss_grace_s)

    def stop(self, flush_timeout: float = 2.0) -> None:
        """Stop discovery, close every channel, save the state and flush the reporter briefly."""
        if self._stopped:
            return
        self._stopped = True
        if self._discovery is not None:
            try:
                self._discovery.stop()
            except Exception:  # noqa: BLE001 - stopping must go on
                LOG.exception("discovery driver failed to stop")
        if self._relearn is not None:
            self._relearn.stop()
        records: Optional[List[Record]] = None
        if self._thread.is_alive():
            try:
                records = self.call(self._stop_on_loop)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(5.0)
        if not self._thread.is_alive() and not self.loop.is_closed():
            self.loop.close()
        self.store.stop(final=records)
        self.sgm_sender.stop(min(flush_timeout, 1.0))
        self.reporter.stop(flush_timeout)
        LOG.info("compute agent stopped")

    def call(self, func: Callable[..., T], *args: Any, timeout: float = 10.0) -> T:
        """Run ``func(*args)`` on the loop and return its result (not from the loop thread)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(func(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def instance_stats(self, instance_uuid: str) -> Optional[InstanceStats]:
        """Return a snapshot of one instance, None if it is not watched (not from the loop thread)."""
        return self.call(lambda: self.instances[instance_uuid].snapshot() if instance_uuid in self.instances else None)

    def all_instance_stats(self) -> Dict[str, InstanceStats]:
        """Return a snapshot of every watched instance by UUID (not from the loop thread)."""
        return self.call(lambda: {uuid: instance.snapshot() for uuid, instance in self.instances.items()})

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _start_on_loop(self) -> None:
        now = self.loop.time()
        self.restorer.begin(self._loaded, now)
        self._next_tick = now + self.tick_s
        self._tick_handle = self.loop.call_at(self._next_tick, self._tick)
        self._report_handle = self.loop.call_later(1.0, self._periodic_report)
        self.loop.call_later(RESTORE_GRACE_S, self.restorer.expire)

    def _stop_on_loop(self) -> List[Record]:
        for handle in (self._tick_handle, self._report_handle):
            if handle is not None:
                handle.cancel()
        for instance in self.instances.values():
            instance.channel.close()
        return self.outbox.close()  # the queued reports go out after the final write

    # -- the tick ------------------------------------------------------------------------------

    def _tick(self) -> None:
        now = self.loop.time()
        try:
            self.scheduler.run_due(now)
            self.incidents.run_due(now)  # held recoveries whose hold-down is over (through the outbox)
            for _ in range(min(CONNECTS_PER_TICK, len(self._to_connect))):
                channel = self._to_connect.popleft()
                instance = self.instances.get(channel.instance_uuid)
                if instance is not None and instance.channel is channel:
                    channel.start()
        finally:
            # Whatever happened, heartbeating goes on. A fixed cadence; after a
            # stall, start afresh rather than run a burst of ticks.
            following = self._next_tick + self.tick_s
            self._next_tick = following if following > now else now + self.tick_s
            self._tick_handle = self.loop.call_at(self._next_tick, self._tick)

    # -- discovery listener (any thread) -------------------------------------------------------

    def channel_added(self, instance_uuid: str, socket_path: str, suspended: bool = False,
                      features: Features = LEGACY_FEATURES) -> None:
        """Discovery: an instance has a channel."""
        self.loop.call_soon_threadsafe(self._on_channel_added, instance_uuid, socket_path, suspended, features)

    def channel_removed(self, instance_uuid: str) -> None:
        """Discovery: an instance's channel is gone."""
        self.loop.call_soon_threadsafe(self._on_channel_removed, instance_uuid)

    def instance_suspended(self, instance_uuid: str, reason: str) -> None:
        """Discovery: an instance cannot run for now."""
        self.loop.call_soon_threadsafe(self._on_suspended, instance_uuid, reason)

    def instance_resumed(self, instance_uuid: str) -> None:
        """Discovery: an instance runs again."""
        self.loop.call_soon_threadsafe(self._on_resumed, instance_uuid)

    def request_state_report(self) -> None:
        """Send a state report now (the controller asked; any thread)."""
        self.loop.call_soon_threadsafe(self._send_state_report)

    def sgm_call(self, method: str, items: List[Dict[str, Any]]) -> None:
        """Hand checked deliveries, notifications or nacks to the relay on the loop (any thread)."""
        self.loop.call_soon_threadsafe(getattr(self.sgm_relay, method), items)

    def _sgm_sender_failed(self, broadcasts: List[Dict[str, Any]], why: str) -> None:
        self.loop.call_soon_threadsafe(self.sgm_relay.sender_failed, broadcasts, why)

    def _channel_of(self, instance_uuid: str) -> Optional[GuestChannel]:
        instance = self.instances.get(instance_uuid)
        return instance.channel if instance is not None else None

    # -- loop side -----------------------------------------------------------------------------

    def _on_channel_added(self, instance_uuid: str, path: str, suspended: bool,
                          features: Features = LEGACY_FEATURES) -> None:
        now = self.loop.time()
        instance = self.instances.get(instance_uuid)
        if instance is not None:
            self._set_features(instance, features)
            instance.channel.set_path(path)
            if suspended:
                self._on_suspended(instance_uuid, "suspended")
            else:
                self._on_resumed(instance_uuid)
            return
        channel = GuestChannel(self.loop, instance_uuid, path, self.scheduler, self.settings, self._buffer)
        monitor = GuestMonitor(instance_uuid, channel.send_challenge, self._on_monitor_event, self.policy,
                               latency=self.totals.latency)
        channel.monitor = monitor
        channel.features = features
        channel.sgm = self.sgm_relay.on_request
        instance = Instance(channel, monitor, since=time.time())
        self.instances[instance_uuid] = instance
        self.restorer.take(instance_uuid, instance, features, now)
        if suspended:
            instance.suspended = "suspended"
            instance.since = None
            monitor.suspend(now)
        self.outbox.changed()
        LOG.info("%s: channel found at %s%s (heartbeat %s, server group messaging %s)", instance_uuid, path,
                 " (suspended)" if suspended else "", "on" if features.heartbeat else "off",
                 "on" if features.server_group_messaging else "off", extra={"instance_uuid": instance_uuid})
        self._to_connect.append(channel)

    def _set_features(self, instance: Instance, features: Features) -> None:
        if features == instance.channel.features:
            return
        instance.channel.features = features
        LOG.info("%s: heartbeat %s, server group messaging %s now", instance.channel.instance_uuid,
                 "on" if features.heartbeat else "off", "on" if features.server_group_messaging else "off",
                 extra={"instance_uuid": instance.channel.instance_uuid})
        if not features.heartbeat:
            instance.monitor.unregister()  # an open fault stays open until the controller's reconciliation
            self.outbox.changed()

    def _on_channel_removed(self, instance_uuid: str) -> None:
        instance = self.instances.pop(instance_uuid, None)
        if instance is None:
            return
        instance.channel.close()
        self.totals.retire(instance)  # its counters stay in the agent's totals
        self.sgm_relay.forget(instance_uuid)
        # An open incident ends now (an exit report, see IncidentReports.removed), not at the next state report.
        self.incidents.removed(instance_uuid, instance.monitor)
        instance.monitor.unregister()  # its heap entry goes stale
        LOG.info("%s: channel removed, monitoring ended", instance_uuid, extra={"instance_uuid": instance_uuid})
        self.outbox.changed()

    def _on_suspended(self, instance_uuid: str, reason: str) -> None:
        instance = self.instances.get(instance_uuid)
        if instance is None or instance.suspended is not None:
            return
        instance.suspended = reason or "suspended"
        instance.since = None
        instance.monitor.suspend(self.loop.time())
        LOG.info("%s: %s, not watched", instance_uuid, instance.suspended, extra={"instance_uuid": instance_uuid})

    def _on_resumed(self, instance_uuid: str) -> None:
        instance = self.instances.get(instance_uuid)
        if instance is None or instance.suspended is None:
            return
        instance.suspended = None
        instance.since = time.time()  # the guest can register from now on
        instance.monitor.resume(self.loop.time())
        self.scheduler.schedule(instance.monitor)
        LOG.info("%s: running again, watched", instance_uuid, extra={"instance_uuid": instance_uuid})

    def _on_monitor_event(self, event: MonitorEvent) -> None:
        if event.kind == EventKind.REGISTERED:
            instance = self.instances.get(event.instance_uuid)
            if instance is not None:
                if not instance.registered:
                    instance.registered_at = time.time()
                instance.registered = True
        self.totals.on_event(event)
        self.incidents.on_event(event)  # reports (through the outbox) and log lines, flap-damped
        self.outbox.changed()

    # -- durability: acknowledgements, the lost state file ---------------------------------------

    def _on_sent(self, method: str, payload: Dict[str, Any], result: Any) -> None:
        """The reporter (its thread): a controller acknowledged ``payload``."""
        if method != FAULT or (isinstance(result, dict) and "error" in result):
            return
        try:
            self.loop.call_soon_threadsafe(self._announced, str(payload.get("instance_uuid")),
                                           payload.get("incident_id"))
        except RuntimeError:
            pass  # the loop is closed: the next start re-sends it, the controller dedupes

    def _announced(self, instance_uuid: str, incident_id: Optional[str]) -> None:
        if self.incidents.announced(instance_uuid, incident_id):
            self.outbox.changed()  # lazily: losing it only costs a duplicate report after a restart

    def _relearned(self, faults: Optional[List[Dict[str, Any]]]) -> None:
        self.restorer.relearned(faults, self.instances, self.loop.time())
        self._relearn = None
        self._send_state_report()  # held until now

    def _records(self) -> List[Record]:
        """What goes into the state file: watched instances, and saved ones not seen again yet."""
        records = []
        for uuid, instance in self.instances.items():
            record = instance_record(uuid, instance, self.incidents)
            if record is not None:
                records.append(record)
        records.extend(self.restorer.saved())
        return records

    def state_report(self) -> Dict[str, Any]:
        """The state of every monitored instance (on the loop)."""
        instances = [report_item(uuid, instance, self.incidents) for uuid, instance in self.instances.items()]
        # Saved instances discovery has not reported yet: their open faults stay open at the controller.
        instances.extend(self.restorer.reported())
        return {"host": self.host, "at": time.time(), "instances": instances, "agent": {
            "version": AGENT_VERSION, "started_at": self.started_at, "rpc_api": COMPUTE_API_VERSION,
            "report_interval_s": float(self.conf.compute.state_report_interval_s)}}

    def _send_state_report(self) -> None:
        if self._relearn is not None:
            # Without the incidents of the lost state file it would clear them at the controller.
            LOG.debug("state report held until the controllers listed this host's open faults")
            return
        self.reporter.report_state(self.state_report())

    def _periodic_report(self) -> None:
        self._report_handle = self.loop.call_later(self.conf.compute.state_report_interval_s,
                                                   self._periodic_report)
        self._send_state_report()

    def stats(self) -> Dict[str, Any]:
        """Counters summed over every instance (on the loop)."""
        totals: Dict[str, Any] = {"instances": len(self.instances), "connected": 0}
        for instance in self.instances.values():
            totals["connected"] += instance.channel.connected
            for name, value in instance.channel.counters.items():
                totals[name] = totals.get(name, 0) + value
            stats = instance.monitor.stats
            for name in ("challenges", "responses", "late_responses", "misses"):
                totals[name] = totals.get(name, 0) + getattr(stats, name)
        totals["reporter"] = dict(self.reporter.counters)
        totals["sgm"] = self.sgm_relay.stats()
        return totals
