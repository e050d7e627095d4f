"""libvirt discovery: the channels of the local hypervisor's domains, followed through lifecycle events.

Threads (never the compute agent's asyncio loop, so libvirtd can't stall it):

* libvirt's default event loop, one per process (a daemon thread): it runs
  the domain and connection callbacks, which only queue work, so the loop
  itself never waits on libvirtd and keeps the connection's keepalive going.
* one worker per driver: opens a read-only connection to ``[compute]
  libvirt_uri``, lists the domains, handles the queued events and calls the
  listener, in order. It reconnects (and lists again) when the connection
  closes.

An event is handled by reading the domain's state and XML *now* rather than
trusting the event's detail: events arrive late and are lost while the
connection is down, so the driver always converges on what libvirt says at
the moment. What each state means is in ``libvirt_domain.domain_status``.

The domain XML also says what the instance's flavor enabled (the
``<ha_guest:features>`` metadata our Nova driver writes; none: heartbeat
only). Each ``channel_added`` carries them, and a known channel whose
features change (a new XML after a resize, a metadata change event) is
reported again with ``channel_added``.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from oslo_config import cfg

from ha_guest.compute.discovery import base
from ha_guest.compute.discovery.libvirt_domain import DomainStatus, Watch, domain_channel, domain_status, event_name
from ha_guest.compute.discovery.libvirt_loop import event_loop

__all__ = ["LibvirtDiscovery", "event_loop"]

LOG = logging.getLogger(__name__)

# A remote connection whose libvirtd stops answering is closed after about
# interval * (count + 1) seconds; that also ends any call waiting on it.
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0
STOP_TIMEOUT_S = 5.0
# From the channel socket's end to our channel_removed when a domain stops. Nova stops and reboots
# a domain with virDomainDestroy: libvirtd sends QEMU SIGTERM and polls every 200 ms until the process
# is gone, holding the domain meanwhile, so the lifecycle event (SHUTDOWN or STOPPED) comes only once
# QEMU has exited and been reaped, long after QEMU closed its sockets. Measured on the 2-core cloud
# host (tox -e cloud, QEMU/TCG guests running): 1.2-1.8 s from the socket's EOF to the event for
# Nova's stop, soft and hard reboot; 0.2 s, the earlier value, raised a false "missed" fault for each.
# Then the event loop thread and our worker's look at the domain (one libvirtd round trip). A hung
# guest is not affected (its socket stays up); only a QEMU that vanished while libvirt still calls the
# domain running becomes a fault this much later.
EVENT_LATENCY_S = 5.0
# One reset gives a burst of reboot events (SeaBIOS resets again while it starts); no guest
# boots and registers within this, so later events of the burst are the same reset.
RESET_COALESCE_S = 1.0

@dataclasses.dataclass(frozen=True)
class _Event:
    generation: int
    uuid: str
    what: str
    reboot: bool = False


@dataclasses.dataclass(frozen=True)
class _Closed:
    generation: int
    reason: int


_STOP = object()

#: What one look at a domain gives: its status, our channel's socket (or None) and its features.
_Seen = Tuple[DomainStatus, Optional[str], base.Features]


@dataclasses.dataclass
class _Known:
    path: str
    features: base.Features
    suspended: Optional[str] = None  # the reason, while suspended
    failed: bool = False
    reset_at: float = -RESET_COALESCE_S  # time.monotonic() of the last reset


class LibvirtDiscovery(base.DiscoveryDriver):
    """Follows the domains of ``[compute] libvirt_uri`` over a read-only connection."""

    def __init__(self, conf: cfg.ConfigOpts, listener: base.DiscoveryListener) -> None:
        super().__init__(conf, listener)
        self.uri: str = conf.compute.libvirt_uri
        self.channel_name: str = conf.compute.channel_name
        self._libvirt = event_loop()  # fails here, at load, when libvirt-python is missing
        self._queue: queue.Queue[object] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._conn: Any = None
        self._generation = 0
        self._callback_ids: List[int] = []
        self._known: Dict[str, _Known] = {}
        self._warned_connect = False
        #: Successful connections so far (a reconnect adds one); for tests and diagnostics.
        self.connections = 0

    @property
    def event_latency_s(self) -> float:
        """libvirt's lifecycle events, handled by the worker: about EVENT_LATENCY_S."""
        return EVENT_LATENCY_S

    def start(self) -> None:
        """Connect, report the existing channels and follow changes, all in the worker thread."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ha-guest-libvirt-discovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following changes and close the connection; safe to call twice."""
        self._stopping.set()
        self._queue.put(_STOP)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT_S)
            if thread.is_alive():
                LOG.warning("libvirt discovery is still inside a libvirt call after %.0f s; leaving it behind",
                            STOP_TIMEOUT_S)

    # -- libvirt's event loop thread: queue and return ------------------------------------------

    def _on_lifecycle(self, _conn: Any, dom: Any, event: int, detail: int, generation: int) -> None:
        try:
            self._queue.put(_Event(generation, dom.UUIDString(), event_name(event, detail)))
        except Exception:  # noqa: BLE001 - never raise into libvirt
            LOG.exception("libvirt lifecycle callback failed")

    def _on_metadata(self, _conn: Any, dom: Any, _kind: int, _uri: Any, generation: int) -> None:
        try:
            self._queue.put(_Event(generation, dom.UUIDString(), "METADATA"))
        except Exception:  # noqa: BLE001 - never raise into libvirt
            LOG.exception("libvirt metadata callback failed")

    def _on_reboot(self, _conn: Any, dom: Any, generation: int) -> None:
        try:
            self._queue.put(_Event(generation, dom.UUIDString(), "REBOOT", reboot=True))
        except Exception:  # noqa: BLE001 - never raise into libvirt
            LOG.exception("libvirt reboot callback failed")

    def _on_close(self, _conn: Any, reason: int, generation: int) -> None:
        self._queue.put(_Closed(generation, reason))

    # -- worker thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        delay = RECONNECT_MIN_S
        try:
            while not self._stopping.is_set():
                if self._conn is None:
                    if not self._connect_safely():
                        if self._idle(delay):
                            break
                        delay = min(delay * 2, RECONNECT_MAX_S)
                        continue
                    delay = RECONNECT_MIN_S
                item = self._queue.get()
                if item is _STOP:
                    break
                try:
                    self._handle(item)
                except Exception:  # noqa: BLE001 - a discovery hiccup must not stop discovery
                    LOG.exception("libvirt discovery failed handling %s", item)
        finally:
            self._disconnect()

    def _idle(self, delay: float) -> bool:
        """Wait before reconnecting; return True when asked to stop."""
        deadline = time.monotonic() + delay
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._stopping.is_set()
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                return self._stopping.is_set()
            # Events of a closed connection are dropped: the listing after reconnecting covers them.
            if item is _STOP:
                return True

    def _connect_safely(self) -> bool:
        try:
            return self._connect()
        except Exception:  # noqa: BLE001 - a bug while listing must not end discovery: retry later
            LOG.exception("libvirt discovery failed to set up on %s", self.uri)
            self._disconnect()
            return False

    def _connect(self) -> bool:
        lv = self._libvirt
        try:
            conn = lv.openReadOnly(self.uri)
        except lv.libvirtError as exc:
            log = LOG.debug if self._warned_connect else LOG.warning
            log("cannot connect to libvirt at %s, retrying: %s", self.uri, exc)
            self._warned_connect = True
            return False
        self._generation += 1
        generation = self._generation
        self._conn = conn
        try:
            try:
                conn.setKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
            except lv.libvirtError as exc:
                LOG.debug("no keepalive on %s: %s", self.uri, exc)  # local drivers (test://) have none
            conn.registerCloseCallback(self._on_close, generation)
            # Register before listing, so nothing that happens meanwhile is missed.
            self._callback_ids = [
                conn.domainEventRegisterAny(None, lv.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, generation),
                conn.domainEventRegisterAny(None, lv.VIR_DOMAIN_EVENT_ID_REBOOT, self._on_reboot, generation),
                # Our features changed in place (virsh metadata, setMetadata): libvirt >= 3.0.
                conn.domainEventRegisterAny(None, lv.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, self._on_metadata,
                                            generation),
            ]
            self._resync()
        except lv.libvirtError as exc:
            LOG.warning("libvirt at %s failed while setting up discovery, reconnecting: %s", self.uri, exc)
            self._disconnect()
            return False
        self._warned_connect = False
        self.connections += 1
        LOG.info("following the domains of %s (read-only): %d with a %s channel",
                 self.uri, len(self._known), self.channel_name)
        return True

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._generation += 1  # callbacks still queued for this connection are stale now
        lv = self._libvirt
        for callback_id in self._callback_ids:
            try:
                conn.domainEventDeregisterAny(callback_id)
            except lv.libvirtError:
                pass  # a dead connection can't deregister; closing it drops them anyway
        self._callback_ids = []
        for close in (conn.unregisterCloseCallback, conn.close):
            try:
                close()
            except lv.libvirtError:
                pass

    def _handle(self, item: object) -> None:
        if isinstance(item, _Closed):
            if item.generation == self._generation and self._conn is not None:
                LOG.warning("connection to libvirt at %s closed (reason %d), reconnecting", self.uri, item.reason)
                self._disconnect()
            return
        if not isinstance(item, _Event) or item.generation != self._generation or self._conn is None:
            return  # an event of a connection since closed: the listing on reconnecting covered it
        lv = self._libvirt
        try:
            status, path, features = self._observe(item.uuid)
        except lv.libvirtError as exc:
            if self._conn is not None and not self._conn.isAlive():
                LOG.warning("connection to libvirt at %s lost, reconnecting: %s", self.uri, exc)
                self._disconnect()
            else:
                LOG.warning("%s: cannot read the domain after %s: %s", item.uuid, item.what, exc,
                            extra={"instance_uuid": item.uuid})
            return
        LOG.debug("%s: %s -> %s %s", item.uuid, item.what, status.watch.value, status.reason,
                  extra={"instance_uuid": item.uuid})
        known = self._known.get(item.uuid)
        if (item.reboot and known is not None and path and status.watch in (Watch.RUNNING, Watch.SUSPENDED)
                and time.monotonic() - known.reset_at >= RESET_COALESCE_S):
            # The guest was reset: its agent is gone without an exit and starts over after boot.
            # A new lifetime for the channel, so the boot is not counted as misses.
            self._forget(item.uuid, "guest reset")
            self._apply(item.uuid, (status, path, features), item.what)
            if item.uuid in self._known:
                self._known[item.uuid].reset_at = time.monotonic()
            return
        self._apply(item.uuid, (status, path, features), item.what)

    def _observe(self, uuid: str) -> _Seen:
        """Read one domain's status, channel socket and features now."""
        lv = self._libvirt
        try:
            dom = self._conn.lookupByUUIDString(uuid)
            return self._status(dom)
        except lv.libvirtError as exc:
            if exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
                return DomainStatus(Watch.GONE, "no such domain"), None, base.LEGACY_FEATURES
            raise

    def _status(self, dom: Any) -> _Seen:
        state, reason = dom.state()
        status = domain_status(state, reason)
        if status.watch is Watch.GONE:
            return status, None, base.LEGACY_FEATURES
        xml = dom.XMLDesc(0)
        uuid = dom.UUIDString()
        try:
            path, features = domain_channel(xml, self.channel_name, uuid)
        except (ValueError, SyntaxError) as exc:  # ElementTree.ParseError is a SyntaxError
            LOG.warning("%s: unusable domain XML: %s", uuid, exc, extra={"instance_uuid": uuid})
            return status, None, base.LEGACY_FEATURES
        return status, path, features

    def _resync(self) -> None:
        """List every domain and reconcile (on each new connection)."""
        lv = self._libvirt
        seen: Dict[str, _Seen] = {}
        for dom in self._conn.listAllDomains(0):
            try:
                seen[dom.UUIDString()] = self._status(dom)
            except lv.libvirtError as exc:
                if exc.get_error_code() != lv.VIR_ERR_NO_DOMAIN:
                    raise  # gone since the listing: treated as not listed
        for uuid in [uuid for uuid in self._known if uuid not in seen]:
            self._forget(uuid, "not defined any more")
        for uuid, found in seen.items():
            self._apply(uuid, found, "listed")

    def _apply(self, uuid: str, seen: _Seen, why: str) -> None:
        """Bring the listener in line with one domain's status, channel and features."""
        status, path, features = seen
        known = self._known.get(uuid)
        if status.watch is Watch.GONE:
            if known is not None:
                self._forget(uuid, "%s, %s" % (why, status.reason))
            return
        if status.watch is Watch.FAILED:
            # Keep the channel: its heartbeat goes silent and the compute agent reports that.
            if known is None:
                if path:
                    self._add(uuid, path, features, None, "%s, %s" % (why, status.reason))
                    self._known[uuid].failed = True
                return
            if not known.failed:
                LOG.warning("%s: domain %s (%s); still watched, so its silence is a fault",
                            uuid, status.reason, why, extra={"instance_uuid": uuid})
                known.failed = True
            if known.suspended is not None:
                known.suspended = None
                self._notify("instance_resumed", uuid)
            return
        if path is None:
            if known is not None:
                self._forget(uuid, "%s, no %s channel any more" % (why, self.channel_name))
            return
        suspended = status.reason if status.watch is Watch.SUSPENDED else None
        if known is None:
            self._add(uuid, path, features, suspended, why)
            return
        known.failed = False
        if path != known.path or features != known.features:
            LOG.info("%s: channel at %s, %s (%s)", uuid, path, _describe(features), why, extra={"instance_uuid": uuid})
            known.path, known.features = path, features
            self._notify("channel_added", uuid, path, suspended=suspended is not None, features=features)
        if suspended is not None and known.suspended != suspended:
            LOG.info("%s: %s (%s)", uuid, suspended, why, extra={"instance_uuid": uuid})
            known.suspended = suspended
            self._notify("instance_suspended", uuid, suspended)
        elif suspended is None and known.suspended is not None:
            LOG.info("%s: running again (%s)", uuid, why, extra={"instance_uuid": uuid})
            known.suspended = None
            self._notify("instance_resumed", uuid)

    def _add(self, uuid: str, path: str, features: base.Features, suspended: Optional[str], why: str) -> None:
        LOG.info("%s: channel at %s, %s%s (%s)", uuid, path, _describe(features),
                 ", %s" % suspended if suspended else "", why, extra={"instance_uuid": uuid})
        self._known[uuid] = _Known(path, features, suspended)
        self._notify("channel_added", uuid, path, suspended=suspended is not None, features=features)
        if suspended is not None:
            self._notify("instance_suspended", uuid, suspended)  # says why

    def _forget(self, uuid: str, why: str) -> None:
        LOG.info("%s: channel gone (%s)", uuid, why, extra={"instance_uuid": uuid})
        del self._known[uuid]
        self._notify("channel_removed", uuid)

    def _notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self._stopping.is_set():
            return
        try:
            getattr(self.listener, method)(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a listener bug must not stop discovery
            LOG.exception("discovery listener %s%r failed", method, args)


def _describe(features: base.Features) -> str:
    """Features for logs."""
    return "heartbeat %s, server group messaging %s" % (
        "on" if features.heartbeat else "off", "on" if features.server_group_messaging else "off")
