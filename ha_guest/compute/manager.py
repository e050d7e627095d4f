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
* the state store's writer thread (state_store.py);
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

from oslo_config import cfg
from stevedore import driver as stevedore_driver

from ha_guest.compute.channel import ChannelSettings, GuestChannel
from ha_guest.compute.discovery.base import LEGACY_FEATURES, DiscoveryDriver, Features
from ha_guest.compute.endpoint import ComputeEndpoint
from ha_guest.compute.fastpath import read_buffer
from ha_guest.compute.flap_damping import DampingPolicy
from ha_guest.compute.heartbeat_monitor import GuestMonitor, GuestState, HeartbeatPolicy, MonitorEvent
from ha_guest.compute.incident_reports import IncidentReports
from ha_guest.compute.instance import Instance, InstanceStats
from ha_guest.compute.reporter import ControllerClient, Reporter
from ha_guest.compute.scheduler import TickScheduler
from ha_guest.compute.sgm_relay import SgmRelay
from ha_guest.compute.sgm_sender import SgmControllerClient, SgmSender
from ha_guest.compute.state_store import Record, StateStore

LOG = logging.getLogger(__name__)

DISCOVERY_NAMESPACE = "ha_guest.compute.discovery"
#: Saved instances that discovery has not reported after this long are forgotten.
RESTORE_GRACE_S = 60.0
#: New channels connected per tick: an agent that starts with a thousand guests
#: brings them up over half a second instead of in one burst that would stall
#: the loop (and the first challenges) for everyone.
CONNECTS_PER_TICK = 20
#: Delay that gathers a burst of state changes into one state file write; the
#: writes themselves are at most one per [compute] state_file_min_interval_s.
SAVE_DELAY_S = 0.1
_PERSISTED = frozenset([GuestState.HEALTHY, GuestState.UNHEALTHY, GuestState.FAILED])

T = TypeVar("T")
__all__ = ["ComputeEndpoint", "ComputeManager", "InstanceStats"]


def load_discovery(conf: cfg.ConfigOpts, listener: Any) -> DiscoveryDriver:
    """Load the ``[compute] discovery_driver`` driver through stevedore."""
    manager: stevedore_driver.DriverManager[DiscoveryDriver] = stevedore_driver.DriverManager(
        DISCOVERY_NAMESPACE, conf.compute.discovery_driver, invoke_on_load=True, invoke_args=(conf, listener))
    loaded = manager.driver
    if not isinstance(loaded, DiscoveryDriver):
        raise TypeError("discovery driver %r is not a DiscoveryDriver" % conf.compute.discovery_driver)
    return loaded


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
        self.settings = ChannelSettings(
            miss_threshold=opts.miss_threshold, hello_retry_s=opts.hello_retry_s,
            reconnect_min_s=opts.reconnect_min_s, reconnect_max_s=max(opts.reconnect_min_s, opts.reconnect_max_s),
            channel_loss_grace_s=opts.channel_loss_grace_s,
            guest_frame_rate=opts.guest_frame_rate, guest_frame_burst=opts.guest_frame_burst,
            guest_byte_rate=opts.guest_byte_rate, guest_byte_burst=opts.guest_byte_burst,
            guest_pause_s=opts.guest_pause_s,
            write_buffer_limit=opts.write_buffer_limit)
        self.reporter = Reporter(controller, queue_size=opts.report_queue_size)
        self.store = StateStore(opts.state_file, min_interval_s=opts.state_file_min_interval_s)
        self._saved: Optional[List[Record]] = None  # what was last handed to the store
        self.scheduler = TickScheduler()
        self._buffer = read_buffer()  # shared by every channel: the loop reads one socket at a time
        self.instances: Dict[str, Instance] = {}
        self.loop = asyncio.new_event_loop()
        self._discovery_factory = discovery or load_discovery
        self._discovery: Optional[DiscoveryDriver] = None
        self._thread = threading.Thread(target=self._run_loop, name="ha-guest-compute-loop", daemon=True)
        self._to_connect: Deque[GuestChannel] = collections.deque()
        self._restored: Dict[str, Record] = {}
        self._restore_until = 0.0
        self._next_tick = 0.0
        self._tick_handle: Optional[asyncio.TimerHandle] = None
        self._report_handle: Optional[asyncio.TimerHandle] = None
        self._save_handle: Optional[asyncio.TimerHandle] = None
        self._stopped = False
        self.sgm_sender = SgmSender(
            sgm_client or controller,  # type: ignore[arg-type]
            self._sgm_sender_failed,
            queue_size=opts.sgm_queue_size, timeout_s=opts.sgm_timeout_s,
            status_workers=opts.sgm_status_workers, batch_window_s=opts.sgm_batch_window_ms / 1000.0)
        self.sgm_relay = SgmRelay(self.loop, self.host, self.sgm_sender, self._channel_of)
        self.incidents = IncidentReports(
            self.host, self.reporter, DampingPolicy(opts.flap_hold_down_s, opts.flap_max_hold_down_s,
                                                    opts.flap_half_life_s),
            self.loop.time, lambda at: time.time() - (self.loop.time() - at))  # events carry loop time

    # -- lifecycle (any thread but the loop's) ------------------------------------------------

    def start(self) -> None:
        """Restore the saved state, start the threads and the discovery driver."""
        self._restored = self.store.load()
        if self._restored:
            LOG.info("restored %d registered instance(s) from %s", len(self._restored), self.store.path)
        self.reporter.start()
        self.sgm_sender.start()
        self.store.start()
        self._thread.start()
        self.call(self._start_on_loop)
        self._discovery = self._discovery_factory(self.conf, self)
        self._discovery.start()
        LOG.info("compute agent started on host %s: %s discovery, tick %d ms, miss threshold %d",
                 self.host, self.conf.compute.discovery_driver, self.conf.compute.tick_ms,
                 self.policy.miss_threshold)

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
        self._restore_until = now + RESTORE_GRACE_S
        self._next_tick = now + self.tick_s
        self._tick_handle = self.loop.call_at(self._next_tick, self._tick)
        self._report_handle = self.loop.call_later(1.0, self._periodic_report)

    def _stop_on_loop(self) -> List[Record]:
        for handle in (self._tick_handle, self._report_handle, self._save_handle):
            if handle is not None:
                handle.cancel()
        for instance in self.instances.values():
            instance.channel.close()
        return self._records()

    # -- the tick ------------------------------------------------------------------------------

    def _tick(self) -> None:
        now = self.loop.time()
        try:
            self.scheduler.run_due(now)
            if self.incidents.run_due(now):  # held recoveries whose hold-down is over
                self._state_changed()
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
        monitor = GuestMonitor(instance_uuid, channel.send_challenge, self._on_monitor_event, self.policy)
        channel.monitor = monitor
        channel.features = features
        channel.sgm = self.sgm_relay.on_request
        instance = Instance(channel, monitor)
        self.instances[instance_uuid] = instance
        record = self._restored.pop(instance_uuid, None)
        if record is not None and record["state"] in _PERSISTED and features.heartbeat:
            monitor.restore(record["interval_ms"], record["incident_id"], record["fault_kind"],
                            record["reason"] or "", now, self.conf.compute.restart_grace_s)
            self.incidents.restored(instance_uuid, monitor, now)
            self.scheduler.schedule(monitor)
            LOG.info("%s: watching again after a restart (%s%s)", instance_uuid, monitor.state.value,
                     ", incident %s" % monitor.incident_id if monitor.incident_id else "")
        if suspended:
            instance.suspended = "suspended"
            monitor.suspend(now)
        LOG.info("%s: channel found at %s%s (heartbeat %s, server group messaging %s)", instance_uuid, path,
                 " (suspended)" if suspended else "", "on" if features.heartbeat else "off",
                 "on" if features.server_group_messaging else "off")
        self._to_connect.append(channel)

    def _set_features(self, instance: Instance, features: Features) -> None:
        if features == instance.channel.features:
            return
        instance.channel.features = features
        LOG.info("%s: heartbeat %s, server group messaging %s now", instance.channel.instance_uuid,
                 "on" if features.heartbeat else "off", "on" if features.server_group_messaging else "off")
        if not features.heartbeat:
            instance.monitor.unregister()  # an open fault stays open until the controller's reconciliation
            self._state_changed()

    def _on_channel_removed(self, instance_uuid: str) -> None:
        instance = self.instances.pop(instance_uuid, None)
        if instance is None:
            return
        instance.channel.close()
        instance.monitor.unregister()  # its heap entry goes stale
        self.sgm_relay.forget(instance_uuid)
        self.incidents.forget(instance_uuid)
        LOG.info("%s: channel removed, monitoring ended", instance_uuid)
        self._state_changed()

    def _on_suspended(self, instance_uuid: str, reason: str) -> None:
        instance = self.instances.get(instance_uuid)
        if instance is None or instance.suspended is not None:
            return
        instance.suspended = reason or "suspended"
        instance.monitor.suspend(self.loop.time())
        LOG.info("%s: %s, not watched", instance_uuid, instance.suspended)

    def _on_resumed(self, instance_uuid: str) -> None:
        instance = self.instances.get(instance_uuid)
        if instance is None or instance.suspended is None:
            return
        instance.suspended = None
        instance.monitor.resume(self.loop.time())
        self.scheduler.schedule(instance.monitor)
        LOG.info("%s: running again, watched", instance_uuid)

    def _on_monitor_event(self, event: MonitorEvent) -> None:
        self.incidents.on_event(event)  # reports and log lines, flap-damped (incident_reports.py)
        self._state_changed()

    def _state_changed(self) -> None:
        if self._save_handle is None and not self._stopped:
            self._save_handle = self.loop.call_later(SAVE_DELAY_S, self._save)

    def _save(self) -> None:
        self._save_handle = None
        records = self._records()
        if records != self._saved:  # a re-init or a damped flap changes nothing worth a write
            self._saved = records
            self.store.save(records)

    def _records(self) -> List[Record]:
        """What goes into the state file: watched instances, and saved ones not seen again yet."""
        records = []
        for uuid, instance in self.instances.items():
            monitor = instance.monitor
            state = self.incidents.saved_state(uuid, monitor)
            if state in _PERSISTED:
                incident_id, fault_kind, reason = self.incidents.fault_fields(uuid, monitor)
                records.append({"instance_uuid": uuid, "state": state.value, "interval_ms": monitor.interval_ms,
                                "incident_id": incident_id, "fault_kind": fault_kind, "reason": reason})
        if self._restored and self.loop.time() < self._restore_until:
            records.extend(self._restored.values())
        else:
            self._restored.clear()
        return records

    def state_report(self) -> Dict[str, Any]:
        """The state of every monitored instance (on the loop)."""
        instances = []
        for uuid, instance in self.instances.items():
            monitor = instance.monitor
            incident_id, fault_kind, reason = self.incidents.fault_fields(uuid, monitor)  # a damped one stays open
            instances.append({
                "instance_uuid": uuid, "state": monitor.state.value, "interval_ms": monitor.interval_ms,
                "incident_id": incident_id, "fault_kind": fault_kind, "reason": reason,
                "connected": instance.channel.connected})
        if self._restored and self.loop.time() < self._restore_until:
            # Saved instances discovery has not reported yet: their open faults stay
            # open at the controller until we know more.
            for record in self._restored.values():
                instances.append(dict(record, connected=False))
        return {"host": self.host, "at": time.time(), "instances": instances}

    def _send_state_report(self) -> None:
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

