"""What the controller does with each report: registry change, sink events, peer sync."""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Optional, Protocol

from oslo_log import log as logging

from ha_guest.controller.dispatch import SinkDispatcher, Worker
from ha_guest.controller.registry import (
    CLEARED_BY_EXITED,
    CLEARED_BY_RECOVERED,
    Cleared,
    FaultRegistry,
    Key,
    cleared_info,
    key_of,
)
from ha_guest.rpc import payloads
from ha_guest.rpc.errors import FaultRegistryFull
from ha_guest.sinks.base import RAISED_BY, RAISED_BY_REPORT, RAISED_BY_RESYNC

LOG = logging.getLogger(__name__)

#: Faults per sync_faults message when answering a peer's sync_request.
SYNC_BATCH = 500


class Peers(Protocol):
    """The peer-sync casts the handler makes (ha_guest.rpc.ControllerSyncAPI)."""

    origin: str

    def sync_fault(self, fault: dict[str, Any]) -> None: ...

    def sync_clear(self, instance_uuid: str, incident_id: Optional[str], cleared: dict[str, Any],
                   notify: bool) -> None: ...

    def sync_request(self) -> None: ...

    def sync_faults(self, faults: list[dict[str, Any]]) -> None: ...


class Intents(Protocol):
    """Where the recovery intents go (ha_guest.controller.recovery_intents.IntentPublisher)."""

    def publish(self, faults: list[dict[str, Any]]) -> None: ...


class FaultHandler:
    """Applies reports to the registry; raises sinks once per incident; keeps peers in step.

    Sink events are queued while the registry lock is held, so every sink sees
    a fault's raise before its clear. Peer casts go through their own worker
    thread: an RPC reply never waits for the broker round trip of a fanout.
    With ``intents`` (an action sink is loaded), every new fault is published
    as a recovery intent before report_fault answers; a fault whose intent
    could not be sent is published again when the agent retries it.
    """

    def __init__(self, registry: FaultRegistry, sinks: SinkDispatcher, peers: Optional[Peers],
                 peer_worker: Optional[Worker] = None, intents: Optional[Intents] = None) -> None:
        self.registry = registry
        self.sinks = sinks
        self.peers = peers
        self.origin = peers.origin if peers is not None else ''
        self._peer_worker = peer_worker
        self._intents = intents
        #: Accepted faults whose recovery intent is not on the broker yet (oldest first, bounded).
        self._unpublished: collections.OrderedDict[Key, None] = collections.OrderedDict()
        #: Per thread: the intents of the batch under way (intent_batch), published once at its end.
        self._batch = threading.local()

    # -- reports from compute agents ------------------------------------------------------------

    def report_fault(self, fault: dict[str, Any], intents: Optional[list[dict[str, Any]]] = None
                     ) -> dict[str, bool]:
        """Record a fault; raise the sinks if it is new. Returns {"duplicate": bool}.

        Its recovery intent is published before this returns (a failed publish
        raises: the agent retries), or appended to ``intents`` for the caller
        to publish (publish_intents), or to the batch of intent_batch().
        """
        fault = payloads.fault(fault)
        key = key_of(fault)
        with self.registry.lock:
            try:
                new = self.registry.add(fault)
            except FaultRegistryFull as exc:
                LOG.error('%s', exc)
                raise
            if new:
                self._announce(fault, RAISED_BY_REPORT)
            owed = self._intents is not None and (new or key in self._unpublished)
            if owed:
                self._owe(key)
        if new:
            self._to_peers('sync_fault', fault)
        else:
            LOG.debug('duplicate fault %s of instance %s', fault['incident_id'], fault['instance_uuid'],
                      instance_uuid=fault['instance_uuid'])
        if owed:
            batch = intents if intents is not None else getattr(self._batch, 'faults', None)
            if batch is not None:
                batch.append(fault)
            else:
                self.publish_intents([fault])
        return {'duplicate': not new}

    @contextlib.contextmanager
    def intent_batch(self) -> Iterator[list[dict[str, Any]]]:
        """Collect the intents of the report_fault calls made inside; publish them as one message at the end.

        For report_batch: ``with self.intent_batch(): ...report_fault per item...``.
        A failed publish raises (after the items were applied): the agent's
        retry finds the faults known and publishes their intents again.
        """
        outer = getattr(self._batch, 'faults', None)
        faults: list[dict[str, Any]] = [] if outer is None else outer
        self._batch.faults = faults
        try:
            yield faults
        finally:
            if outer is None:
                self._batch.faults = None
        if outer is None:
            self.publish_intents(faults)

    def publish_intents(self, faults: list[dict[str, Any]]) -> None:
        """Publish one recovery intent for ``faults`` (nothing if empty); raise if it could not be sent."""
        if not faults or self._intents is None:
            return
        faults = list({key_of(fault): fault for fault in faults}.values())  # a batch may name one fault twice
        try:
            self._intents.publish(faults)
        except Exception:
            # log: several instances (the intent's faults; the first one is named)
            LOG.exception('recovery intent for %d fault(s) not sent (first: incident %s of instance %s); the '
                          'compute agent\'s retry sends it again', len(faults), faults[0]['incident_id'],
                          faults[0]['instance_uuid'],
                          instance_uuid=faults[0]['instance_uuid'] if len(faults) == 1 else None)
            raise
        with self.registry.lock:
            for fault in faults:
                self._unpublished.pop(key_of(fault), None)

    def report_recovery(self, recovery: dict[str, Any]) -> None:
        """Clear the recovered incident."""
        recovery = payloads.recovery(recovery)
        cleared = cleared_info(recovery['recovered_at'], CLEARED_BY_RECOVERED)
        with self.registry.lock:
            gone = self.registry.clear(recovery['instance_uuid'], recovery['incident_id'], **cleared)
            if gone is not None:
                self._clear_sinks([gone])
        self._to_peers('sync_clear', recovery['instance_uuid'], recovery['incident_id'], cleared, gone is None)

    def report_exit(self, exit: dict[str, Any]) -> None:  # noqa: A002 - the contract's name
        """Clear every fault of an instance whose guest ended monitoring."""
        exit = payloads.exit_report(exit)
        cleared = cleared_info(exit['at'], CLEARED_BY_EXITED)
        with self.registry.lock:
            gone = self.registry.clear_instance(exit['instance_uuid'], **cleared)
            self._clear_sinks(gone)
        self._to_peers('sync_clear', exit['instance_uuid'], None, cleared, not gone)

    def report_state(self, report: dict[str, Any]) -> None:
        """Reconcile the registry with a compute agent's state report."""
        report = payloads.state_report(report)
        with self.registry.lock:
            added, relearned, gone = self.registry.reconcile(report)
            for fault in added:
                # An older agent's fault, never announced here; no recovery intent: it may have been acted on.
                self._announce(fault, RAISED_BY_RESYNC)
            self._clear_sinks(gone)
        for fault in added:
            LOG.info('state report of %s: fault %s of instance %s added', report['host'], fault['incident_id'],
                     fault['instance_uuid'], instance_uuid=fault['instance_uuid'])
            self._to_peers('sync_fault', fault)
        for fault in relearned:
            # Announced when its fault report was accepted, and handed to recovery then: learned, not raised.
            LOG.info('state report of %s: fault %s of instance %s re-learned (announced already)', report['host'],
                     fault['incident_id'], fault['instance_uuid'], instance_uuid=fault['instance_uuid'])
            self._to_peers('sync_fault', fault)
        for item in gone:
            LOG.info('state report of %s: fault %s of instance %s cleared', report['host'],
                     item.fault['incident_id'], item.fault['instance_uuid'], instance_uuid=item.fault['instance_uuid'])
            self._to_peers('sync_clear', item.fault['instance_uuid'], item.fault['incident_id'], item.cleared,
                           False)

    def report_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply a batch of faults, recoveries and exits in order; one result per item.

        A refused item ({"error": text}) does not refuse the others; any other
        failure fails the whole call, and the agent sends the batch again
        (every report is idempotent).
        """
        results: list[dict[str, Any]] = []
        self._batch.peer_casts = []  # the batch's news for the peers, sent at its end with its faults coalesced
        try:
            with self.intent_batch():  # one recovery intent for the batch's new faults, published before the answer
                self._apply_batch(payloads.batch_list(items), results)
        finally:
            casts, self._batch.peer_casts = self._batch.peer_casts, None
            self._flush_peer_casts(casts)
        return results

    def _apply_batch(self, items: list[Any], results: list[dict[str, Any]]) -> None:
        """Apply each item of a batch in order, appending its result."""
        for item in items:
            try:
                item = payloads.batch_item(item)
                if item['type'] == payloads.TYPE_FAULT:
                    results.append(self.report_fault(item['payload']))
                    continue
                if item['type'] == payloads.TYPE_RECOVERY:
                    self.report_recovery(item['payload'])
                else:
                    self.report_exit(item['payload'])
                results.append({'duplicate': False})
            except (payloads.InvalidPayload, FaultRegistryFull) as exc:
                results.append({'error': '%s: %s' % (type(exc).__name__, exc)})

    def _flush_peer_casts(self, casts: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Send a batch's peer casts in order, runs of sync_fault as sync_faults (a storm: a few casts, not 1000)."""
        run: list[dict[str, Any]] = []
        for method, args in casts + [('', ())]:
            if method == 'sync_fault' and len(run) < SYNC_BATCH:
                run.append(args[0])
                continue
            if run:
                self._to_peers('sync_faults', list(run))
                run = []
            if method == 'sync_fault':
                run.append(args[0])
            elif method:
                self._to_peers(method, *args)

    def list_faults(self, instance_uuid: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the active faults, each with "state": "active"."""
        return [dict(fault, state='active') for fault in self.registry.list(instance_uuid)]

    # -- peer sync --------------------------------------------------------------------------------

    def sync_fault(self, origin: str, fault: dict[str, Any]) -> None:
        """A peer raised a fault: record it without raising the sinks again.

        Unlike a compute agent's report, a peer's news never revives an
        incident this controller saw cleared: the clear may have overtaken it.
        """
        if origin == self.origin:
            return
        if not self.registry.merge([payloads.fault(fault)]) and len(self.registry) >= self.registry.max_faults:
            LOG.error('peer %s: fault registry full ([controller] max_faults %d); fault %s of instance %s not '
                      'recorded', origin, self.registry.max_faults, fault.get('incident_id'),
                      fault.get('instance_uuid'), instance_uuid=fault.get('instance_uuid'))

    def sync_clear(self, origin: str, instance_uuid: str, incident_id: Optional[str], cleared: dict[str, Any],
                   notify: bool) -> None:
        """A peer ended a fault; tell the sinks too if that peer did not hold it (``notify``)."""
        if origin == self.origin:
            return
        with self.registry.lock:
            if incident_id is None:
                gone = self.registry.clear_instance(instance_uuid, cleared['cleared_at'], cleared['cleared_by'])
            else:
                one = self.registry.clear(instance_uuid, incident_id, cleared['cleared_at'], cleared['cleared_by'])
                gone = [one] if one is not None else []
            if notify:
                self._clear_sinks(gone)

    def sync_request(self, origin: str) -> None:
        """A peer (re)started: send it every active fault."""
        if origin == self.origin:
            return
        faults = self.registry.list()
        for start in range(0, len(faults), SYNC_BATCH):
            self._to_peers('sync_faults', faults[start:start + SYNC_BATCH])

    def sync_faults(self, origin: str, faults: list[dict[str, Any]]) -> None:
        """A peer's active faults: add those this controller lacks (its sinks were raised by the peer)."""
        if origin == self.origin:
            return
        added = self.registry.merge(payloads.fault(fault) for fault in faults)
        if added:
            LOG.info('added %d fault(s) known to peer %s', len(added), origin)

    def request_peer_sync(self) -> None:
        """Ask the peers for their faults (on start)."""
        self._to_peers('sync_request')

    # -- helpers ------------------------------------------------------------------------------------

    def _announce(self, fault: dict[str, Any], raised_by: str) -> None:
        """Hand a fault new to this registry to its sinks (those the announce journal names skipped)."""
        told = self.sinks.fault_raised(dict(fault, **{RAISED_BY: raised_by}))
        if told:
            # Told before this controller restarted (its answer to the agent was lost with it).
            LOG.info('fault %s of instance %s: sink(s) %s told before a restart (announce journal), not again',
                     fault['incident_id'], fault['instance_uuid'], ', '.join(sorted(told)),
                     instance_uuid=fault['instance_uuid'])

    def _clear_sinks(self, gone: list[Cleared]) -> None:
        for item in gone:
            self._unpublished.pop(key_of(item.fault), None)  # an ended incident needs no recovery
            self.sinks.fault_cleared(item.fault, item.cleared)

    def _owe(self, key: Key) -> None:
        """Remember that ``key``'s intent is not sent yet (the registry lock is held)."""
        self._unpublished[key] = None
        while len(self._unpublished) > self.registry.max_faults:
            self._unpublished.popitem(last=False)

    def _to_peers(self, method: str, *args: Any) -> None:
        if self.peers is None:
            return
        held = getattr(self._batch, 'peer_casts', None)
        if held is not None:  # inside report_batch: sent at its end (_flush_peer_casts)
            held.append((method, args))
            return
        call = getattr(self.peers, method)
        if self._peer_worker is None:
            call(*args)
        else:
            self._peer_worker.submit(call, *args)

