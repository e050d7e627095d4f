"""ha-guest-controller's parts put together: sinks, registry, RPC servers, start and stop."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any, Optional

import oslo_messaging
from oslo_config import cfg
from oslo_log import log as logging
from stevedore import named

from ha_guest import conf as ha_conf
from ha_guest.controller.announce_journal import AnnounceJournal
from ha_guest.controller.dispatch import SinkDispatcher, Worker
from ha_guest.controller.endpoint import ControllerEndpoint, ControllerSyncEndpoint
from ha_guest.controller.handler import FaultHandler
from ha_guest.controller.nova_notifications import NovaNotificationEndpoint, get_listener
from ha_guest.controller.recovery_intents import IntentCarrier, IntentPublisher, get_intent_transport, start_listener
from ha_guest.controller.registry import ENDED, FaultRegistry
from ha_guest.controller.sgm_directory import MemberDirectory
from ha_guest.controller.sgm_router import SgmRouter
from ha_guest.controller.watchers import Watchers
from ha_guest.rpc import transport as rpc_transport
from ha_guest.rpc.compute_api import ComputeAPI
from ha_guest.rpc.controller_api import controller_server_target
from ha_guest.rpc.sync_api import ControllerSyncAPI, sync_server_target
from ha_guest.sinks.base import NAMESPACE, FaultSink, IsActive
from ha_guest.sinks.recovery import ActionSink

LOG = logging.getLogger(__name__)

#: Seconds each sink (and the peer-sync worker) may take to send what is queued at stop.
DRAIN_TIMEOUT_S = 5.0


class SinkLoadError(RuntimeError):
    """A sink named in [controller] fault_sinks is not installed or failed to load."""


def load_sinks(conf: cfg.ConfigOpts, transport: Any, is_active: Optional[IsActive] = None) -> dict[str, FaultSink]:
    """Load the sinks named in [controller] fault_sinks, in that order; fail if one can't load.

    ``is_active`` (the registry's) is bound to every sink, for those that check before they act.
    """
    names = list(dict.fromkeys(conf.controller.fault_sinks))  # a name listed twice loads once

    def missing(absent: Iterable[str]) -> None:
        raise SinkLoadError('fault sink(s) %s not found in entry point namespace %s'
                            % (', '.join(sorted(absent)), NAMESPACE))

    def failed(manager: Any, entrypoint: Any, exc: BaseException) -> None:
        raise SinkLoadError('fault sink %s failed to load: %s' % (entrypoint.name, exc)) from exc

    if not names:
        return {}
    manager: named.NamedExtensionManager[FaultSink] = named.NamedExtensionManager(
        NAMESPACE, names, invoke_on_load=True, invoke_args=(conf, transport), name_order=True,
        on_load_failure_callback=failed, on_missing_entrypoints_callback=missing)
    sinks = {ext.name: ext.obj for ext in manager if ext.obj is not None}
    if is_active is not None:
        for sink in sinks.values():
            # A sink that does not derive from FaultSink may lack the hook; it has no use for it then.
            bind = getattr(sink, 'bind_registry', None)
            if bind is not None:
                bind(is_active)
    return sinks


class ControllerManager:
    """Runs one controller: the controller API server, the peer-sync server, the sinks and the SGM router."""

    def __init__(self, conf: cfg.ConfigOpts, rpc_transport_: Optional[oslo_messaging.Transport] = None,
                 notification_transport: Optional[oslo_messaging.Transport] = None,
                 nova_connection_factory: Optional[Callable[[], Any]] = None) -> None:
        """``nova_connection_factory`` returns an openstacksdk Connection (default: from [nova_api])."""
        ha_conf.register_all(conf)
        self.conf = conf
        # Unique per process: two controllers may share a host name (and a restart must not look like itself).
        self.origin = '%s-%s' % (conf.host, uuid.uuid4().hex[:12])
        self._own_rpc = rpc_transport_ is None
        self._own_notification = notification_transport is None
        self.transport = rpc_transport_ or rpc_transport.get_rpc_transport(conf)
        self.notification_transport = (notification_transport
                                       or rpc_transport.get_notification_transport(conf))
        opts = conf.controller
        self.registry = FaultRegistry(opts.max_faults, opts.resync_clear_grace_s)
        sinks = load_sinks(conf, self.notification_transport, self._not_ended)
        self.journal = (AnnounceJournal(opts.announce_journal, opts.announce_journal_retention_s, 2 * opts.max_faults)
                        if opts.announce_journal else None)
        self.dispatcher = SinkDispatcher(sinks, opts.sink_queue_size, opts.sink_lanes, self.journal)
        self.peer_worker = Worker('peer-sync', opts.sink_queue_size)
        self.peers = ControllerSyncAPI(conf, self.origin, self.transport)
        self.compute_api = ComputeAPI(conf, self.transport)
        # Recovery intents only where a sink acts on them (recovery, masakari).
        action_sinks = [sink for sink in sinks.values() if isinstance(sink, ActionSink)]
        self.intent_transport: Optional[oslo_messaging.Transport] = None
        if action_sinks:
            self.intent_transport = (get_intent_transport(conf) if self._own_notification
                                     else self.notification_transport)
        self.intents = IntentPublisher(conf, self.intent_transport, self.origin) if self.intent_transport else None
        self.carrier = IntentCarrier(self.registry, action_sinks, self._ask_host,
                                     conf.recovery.unknown_incident_wait_s) if action_sinks else None
        self.handler = FaultHandler(self.registry, self.dispatcher, self.peers, self.peer_worker, self.intents)
        self.directory = MemberDirectory(conf, nova_connection_factory)
        self.router = SgmRouter(conf, self.directory, self.compute_api, self.peers)
        self.watchers = Watchers(conf, self.origin, self.dispatcher, self.peers)
        self._servers: list[oslo_messaging.MessageHandlingServer] = []
        self._nova_transport: Optional[oslo_messaging.Transport] = None

    def start(self) -> None:
        """Start the sinks' threads and both RPC servers, then resynchronise (if configured)."""
        if self.journal is not None:
            try:
                self.journal.open()  # before any report is taken: a retried one must find its incident
            except OSError as exc:
                LOG.error('announce journal %s: %s; running without it (a restart may tell the sinks of open '
                          'incidents again). Fix [controller] announce_journal or set it empty.',
                          self.journal.path, exc)
        self.dispatcher.start()
        self.peer_worker.start()
        # The sync server first: once the controller API answers, peer updates are heard too.
        for target, endpoint in ((sync_server_target(self.conf),
                                  ControllerSyncEndpoint(self.handler, self.router, self.watchers)),
                                 (controller_server_target(self.conf),
                                  ControllerEndpoint(self.handler, self.router, self.watchers))):
            server = rpc_transport.get_rpc_server(self.transport, target, [endpoint])
            server.start()
            self._servers.append(server)
        if self.carrier is not None:
            # After the sync server: an intent for an incident a peer knows waits for that peer's sync.
            assert self.intent_transport is not None
            self._servers.append(start_listener(self.conf, self.intent_transport, self.carrier))
        if self.conf.sgm.enabled:
            self.directory.warm_up()
            self._start_nova_listener()
        LOG.info('ha-guest-controller %s listening on topic %s (peers: %s), sinks: %s', self.origin,
                 self.conf.rpc.controller_topic, self.conf.rpc.controller_sync_topic,
                 ', '.join(self.dispatcher.sinks) or 'none')
        if self.conf.controller.resync_on_start:
            self.resync()
        self.watchers.start()

    def _start_nova_listener(self) -> None:
        """Consume Nova's versioned notifications in the shared pool (after the sync server is up)."""
        opts = self.conf.sgm
        transport = self.notification_transport
        if opts.notification_transport_url:
            transport = self._nova_transport = rpc_transport.get_notification_transport(
                self.conf, opts.notification_transport_url)
        listener = get_listener(self.conf, transport, NovaNotificationEndpoint(self.router.notification))
        try:
            # One thread: a member's events are applied and passed on to its peers in the order Nova sent
            # them (the cache also drops an event older than one applied, whatever the path).
            listener.start(override_pool_size=1)
        except Exception:
            # Faults and broadcast routing need no notifications: keep serving them (the cache expires instead).
            LOG.exception('server group messaging: cannot consume Nova\'s notifications on topic(s) %s, exchange '
                          '%s; members\' state changes are not passed on (check [sgm] and that the exchange is '
                          'declared as Nova declares it: same amqp_durable_queues and amqp_auto_delete)',
                          ', '.join(opts.notification_topics), opts.notification_exchange)
            return
        self._servers.append(listener)
        LOG.info('server group messaging: Nova notifications on topic(s) %s, exchange %s, pool %s',
                 ', '.join(opts.notification_topics), opts.notification_exchange, opts.notification_pool)

    def _not_ended(self, instance_uuid: str, incident_id: str) -> bool:
        """What the action sinks ask just before they act: the incident is not known to have ended."""
        return self.registry.state_of((instance_uuid, incident_id)) != ENDED

    def _ask_host(self, host: str) -> None:
        """Ask one compute agent for a state report (an intent's incident is unknown here)."""
        self.compute_api.request_state_report({}, host=host)

    def resync(self) -> None:
        """Ask the peers for their faults and every compute agent for a state report."""
        self.handler.request_peer_sync()
        try:
            self.compute_api.request_state_report({})
        except Exception:
            # The periodic state reports rebuild the registry anyway; don't die for this.
            LOG.exception('could not ask the compute agents for state reports')

    def stop(self) -> None:
        """Stop taking requests, drain the sink queues, release the transports."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.stop()
        for server in servers:
            server.wait()
        self.watchers.stop(DRAIN_TIMEOUT_S)
        self.peer_worker.stop(DRAIN_TIMEOUT_S)
        self.dispatcher.stop(DRAIN_TIMEOUT_S)
        if self.journal is not None:
            self.journal.close()
        self.directory.close()
        if self._nova_transport is not None:
            self._nova_transport.cleanup()
            self._nova_transport = None
        if self._own_rpc:
            self.transport.cleanup()
        if self._own_notification:
            self.notification_transport.cleanup()
            if self.intent_transport is not None:
                self.intent_transport.cleanup()
        LOG.info('ha-guest-controller %s stopped', self.origin)
