"""The host services of the demo, in this process: the real controller and compute agent on one transport.

With the default ``fake:/`` transport (oslo.messaging's in-process driver)
the controller's RPC server, the compute agent's client and server, and the
notification listeners must share transport objects: the fake driver's
queues belong to one transport. With ``rabbit://...`` the same code talks
through a real broker, on topics of its own.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, Optional

import oslo_messaging

from ha_guest import rpc
from ha_guest.compute.endpoint import RPC_WORKERS
from ha_guest.compute.manager import ComputeEndpoint, ComputeManager, InstanceStats
from ha_guest.controller.manager import ControllerManager
from ha_guest.sinks import base as sinks_base
from ha_guest.testing.messaging import make_conf

LOG = logging.getLogger(__name__)

class NotificationTap:
    """Listens to the controller's ``notifications`` sink topic; calls ``on_event`` on arrival."""

    def __init__(self, transport: oslo_messaging.Transport, topics: list[str],
                 on_event: Callable[[str, dict[str, Any], float], None]) -> None:
        self._on_event = on_event
        targets = [oslo_messaging.Target(topic=topic) for topic in topics]
        self.listener = oslo_messaging.get_notification_listener(transport, targets, [self])

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any) -> None:
        """A notification arrived (listener thread)."""
        if event_type in sinks_base.EVENT_TYPES and isinstance(payload, dict):
            self._on_event(event_type, payload, time.monotonic())


class HostServices:
    """The controller (ControllerManager) and the compute agent (ComputeManager) of the demo."""

    def __init__(self, tmp: str, transport_url: str, channel_dir: str, vitrage_topics: Optional[list[str]],
                 notification_transport: Optional[oslo_messaging.Transport] = None,
                 compute_host: str = 'demo-compute-1', controller_host: str = 'demo-controller',
                 controller_groups: Optional[dict[str, dict[str, Any]]] = None) -> None:
        """``controller_groups``: more options of the controller (e.g. [sgm] and [nova_api])."""
        suffix = uuid.uuid4().hex[:8]  # a broker may be shared: topics of this run only
        sinks = ['log', 'notifications'] + (['vitrage'] if vitrage_topics else [])
        common: dict[str, dict[str, Any]] = {
            'rpc': {'controller_topic': 'ha_guest_controller_' + suffix,
                    'controller_sync_topic': 'ha_guest_controller_sync_' + suffix,
                    'compute_topic': 'ha_guest_compute_' + suffix},
            'controller': {'fault_sinks': sinks,
                           'announce_journal': os.path.join(tmp, 'controller-announced.jsonl')},
            'sink_notifications': {'topics': ['ha_guest_notifications_' + suffix]},
            'sink_vitrage': {'topics': vitrage_topics or ['vitrage_notifications_' + suffix]},
            'compute': {'discovery_driver': 'directory', 'directory_path': channel_dir,
                        'directory_poll_s': 0.1, 'state_file': os.path.join(tmp, 'compute-state.json'),
                        'reconnect_min_s': 0.05, 'reconnect_max_s': 0.5},
        }
        self.tmp = tmp
        self.transport_url = transport_url
        self.common = common
        self.controller_conf = make_conf(transport_url, controller_host, dict(common, **(controller_groups or {})))
        self.compute_conf = make_conf(transport_url, compute_host, common)
        self.compute_host = compute_host
        self.transport = rpc.get_rpc_transport(self.controller_conf)
        self._own_notification = notification_transport is None
        self.notification_transport = notification_transport or rpc.get_notification_transport(
            self.controller_conf)
        self.notification_topics = list(self.controller_conf.sink_notifications.topics)
        self.controller: Optional[ControllerManager] = None
        self.compute: Optional[ComputeManager] = None
        self._compute_server: Optional[oslo_messaging.MessageHandlingServer] = None
        #: More compute agents (host -> manager) and their RPC servers.
        self.more_computes: dict[str, ComputeManager] = {}
        self._more_servers: list[oslo_messaging.MessageHandlingServer] = []
        self._taps: list[oslo_messaging.MessageHandlingServer] = []
        self.api = rpc.ControllerAPI(self.controller_conf, self.transport)
        self._lock = threading.Lock()

    def tap_notifications(self, on_event: Callable[[str, dict[str, Any], float], None]) -> None:
        """Start a listener on the notifications sink's topic (what any consumer would see)."""
        tap = NotificationTap(self.notification_transport, self.notification_topics, on_event)
        tap.listener.start()
        self._taps.append(tap.listener)

    def start_controller(self) -> None:
        """Start ha-guest-controller's manager: RPC servers, registry, sinks."""
        self.controller = ControllerManager(self.controller_conf, self.transport, self.notification_transport)
        self.controller.start()

    def start_compute(self) -> None:
        """Start ha-guest-compute's manager (directory discovery) and its RPC server."""
        controller = rpc.ControllerAPI(self.compute_conf, self.transport)
        self.compute = ComputeManager(self.compute_conf, controller, host=self.compute_host)
        self._compute_server = rpc.get_rpc_server(self.transport, rpc.compute_server_target(self.compute_conf),
                                                  [ComputeEndpoint(self.compute)])
        self.compute.start()
        self._compute_server.start(override_pool_size=RPC_WORKERS)

    def start_more_compute(self, host: str, channel_dir: str) -> ComputeManager:
        """Start another compute agent, as on another compute node: its own host name and channel folder."""
        compute_opts = dict(self.common['compute'], directory_path=channel_dir,
                            state_file=os.path.join(self.tmp, '%s-state.json' % host))
        conf = make_conf(self.transport_url, host, dict(self.common, compute=compute_opts))
        manager = ComputeManager(conf, rpc.ControllerAPI(conf, self.transport), host=host)
        server = rpc.get_rpc_server(self.transport, rpc.compute_server_target(conf), [ComputeEndpoint(manager)])
        manager.start()
        server.start(override_pool_size=RPC_WORKERS)
        self.more_computes[host] = manager
        self._more_servers.append(server)
        return manager

    def compute_view(self) -> dict[str, InstanceStats]:
        """Return, per instance, the compute agent's state and counters."""
        return self.compute.all_instance_stats() if self.compute is not None else {}

    def stop(self) -> None:
        """Stop the compute agent, then the controller, then the listeners; never raises."""
        steps: list[tuple[str, Callable[[], object]]] = []
        for server in self._more_servers:
            steps.append(('compute RPC server', _stopper(server)))
        for manager in self.more_computes.values():
            steps.append(('compute agent', functools.partial(manager.stop, flush_timeout=1.0)))
        if self._compute_server is not None:
            steps.append(('compute RPC server', _stopper(self._compute_server)))
        if self.compute is not None:
            compute = self.compute
            steps.append(('compute agent', lambda: compute.stop(flush_timeout=1.0)))
        if self.controller is not None:
            steps.append(('controller', self.controller.stop))
        for tap in self._taps:
            steps.append(('notification listener', _stopper(tap)))
        steps.append(('RPC transport', self.transport.cleanup))
        if self._own_notification:
            steps.append(('notification transport', self.notification_transport.cleanup))
        for name, step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - stopping goes on
                LOG.exception('stopping the %s failed', name)
        self._compute_server = self.compute = self.controller = None
        self.more_computes, self._more_servers = {}, []
        self._taps = []


def _stopper(server: oslo_messaging.MessageHandlingServer) -> Callable[[], None]:
    """Return a function that stops an oslo.messaging server and waits for it."""
    def stop() -> None:
        server.stop()
        server.wait()

    return stop
