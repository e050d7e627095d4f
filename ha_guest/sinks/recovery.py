"""The "recovery" fault sink: hard reboot or stop an instance through the Nova API, as its flavor asks.

ActionSink holds what the "recovery" and "masakari" sinks share: per fault
of a recovery intent (ha_guest.controller.recovery_intents), one decision,
taken in a small pool of the sink's own, once per incident, never for a fault
known to have ended, never when Nova (or Masakari) shows it done already,
every API call bounded, and one log line that says what was decided and why.
"""

from __future__ import annotations

import collections
import datetime
import logging as std_logging
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Optional

from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as sdk_exceptions
from oslo_config import cfg
from oslo_log import log as logging

from ha_guest.conf import controller as controller_conf
from ha_guest.conf import recovery as recovery_conf
from ha_guest.nova import specs
from ha_guest.sinks import openstack_client
from ha_guest.sinks.action_pool import ActionPool
from ha_guest.sinks.base import FaultSink, IsActive
from ha_guest.sinks.recovery_policy import PolicyLookup, PolicyUnknown

LOG = logging.getLogger(__name__)

#: Incidents remembered as handled (and as cleared), oldest forgotten first.
MEMORY = 100000
#: Seconds close() waits for actions under way.
CLOSE_TIMEOUT_S = 5.0

ACTED, ALREADY_DONE, SKIPPED, FAILED = 'acted', 'already_done', 'skipped', 'failed'
#: Seconds Nova's clock may be behind the compute host's when a reboot or stop since detection is looked for;
#: the action of an earlier incident comes seconds earlier (the guest boots and registers again first).
CLOCK_SKEW_S = 1.0
#: Nova's instance action names of our actions.
NOVA_ACTIONS = {specs.RECOVERY_REBOOT: 'reboot', specs.RECOVERY_STOP: 'stop'}

#: The sink that carries out each value of ha_guest:recovery ("none" is logged by "recovery").
OWNERS = {
    specs.RECOVERY_NONE: 'recovery',
    specs.RECOVERY_REBOOT: 'recovery',
    specs.RECOVERY_STOP: 'recovery',
    specs.RECOVERY_MASAKARI: 'masakari',
}


def describe_error(exc: BaseException, timeouts: tuple[float, float]) -> str:
    """Return why an API call failed, in words for the log."""
    if isinstance(exc, ks_exceptions.ConnectTimeout):
        # keystoneauth raises ConnectTimeout for connect and read timeouts alike.
        return 'no answer in time (connect timeout %.1fs, read timeout %.1fs): %s' % (timeouts + (exc,))
    if isinstance(exc, ks_exceptions.ConnectFailure):
        return 'could not connect: %s' % exc
    if isinstance(exc, sdk_exceptions.HttpException):
        return 'HTTP %s: %s' % (exc.status_code, exc.details or exc.message)
    return '%s: %s' % (type(exc).__name__, exc)


def iso_utc(epoch: float) -> str:
    """Return an epoch time as the naive UTC ISO 8601 text OpenStack APIs use."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')


def parse_time(text: Any) -> Optional[datetime.datetime]:
    """Return an OpenStack API time (ISO 8601, naive or Z) as a naive UTC datetime, or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return parsed


class AlreadyDone(Exception):
    """The action this fault needs was taken already (by an earlier try, a peer, or by hand); why in words."""


class Pending:
    """The outcomes of an intent's faults in one sink, filled in by the pool; wait() returns them."""

    def __init__(self, count: int) -> None:
        self.outcomes: list[Optional[str]] = [None] * count
        self._left = count
        self._done = threading.Condition()

    def set(self, index: int, outcome: str) -> None:
        """Record the outcome of fault ``index``."""
        with self._done:
            self.outcomes[index] = outcome
            self._left -= 1
            self._done.notify_all()

    def wait(self, timeout: Optional[float] = None) -> list[str]:
        """Wait until every fault is decided (or ``timeout``); return the outcomes ("pending" if undecided)."""
        with self._done:
            self._done.wait_for(lambda: self._left <= 0, timeout)
            return [outcome or 'pending' for outcome in self.outcomes]


class _Memory:
    """A bounded set of incident keys; the oldest is forgotten first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: tuple[str, str]) -> bool:
        """Remember ``key``; return False if it was remembered already."""
        with self._lock:
            if key in self._keys:
                return False
            self._keys[key] = None
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)
            return True

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys


class ActionSink(FaultSink):
    """Carries out the recovery an instance's flavor asks for, once per incident (base of two sinks)."""

    #: Entry point name in ha_guest.fault_sinks.
    name: ClassVar[str] = ''
    #: The ha_guest:recovery values this sink carries out, and how the log names each.
    actions: ClassVar[dict[str, str]] = {}

    def __init__(self, conf: cfg.ConfigOpts, transport: Any, connection: Any = None,
                 is_active: Optional[IsActive] = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(conf, transport)
        recovery_conf.register_opts(conf)
        controller_conf.register_opts(conf)
        self.opts = conf[recovery_conf.GROUP]
        self.timeouts = openstack_client.timeouts(conf)
        # Built at load: bad [nova_api] settings stop the controller at start, not at the first fault.
        self.connection = connection if connection is not None else openstack_client.connect(conf)
        if is_active is not None:
            self.bind_registry(is_active)
        self._clock = clock
        self.policies = PolicyLookup(self._fetch_server, self.opts.policy_cache_s, clock=clock)
        self.counts: collections.Counter[str] = collections.Counter()
        self._counts_lock = threading.Lock()  # decisions are logged from the sink's thread and the pool's
        #: (instance_uuid, incident_id, outcome, reason) of the latest decisions, newest last.
        self.decisions: collections.deque[tuple[str, str, str, str]] = collections.deque(maxlen=1000)
        self._taken = _Memory(MEMORY)
        self._cleared = _Memory(MEMORY)
        # openstacksdk creates a service proxy on first use, without a lock of its own.
        self._proxy_lock = threading.Lock()
        # A full queue is logged below as a decision, with its cause.
        self.pool = ActionPool('sink-%s' % self.name, self.opts.workers, self.opts.queue_size, log_drops=False)
        self.pool.start()
        if self.opts.enabled:
            self.pool.submit(self._warm_up)

    # -- FaultSink -----------------------------------------------------------------------------------

    def fault_raised(self, fault: dict[str, Any]) -> None:
        """Nothing: the fault's recovery intent, on the broker, brings it to one controller's sink."""

    # -- recovery intents -----------------------------------------------------------------------------

    def carry_out_intent(self, faults: list[dict[str, Any]], received: Optional[float] = None) -> Pending:
        """Decide at once what needs no API call, queue the rest for the pool; wait() on the result.

        ``received``: when the fault was accepted (this sink's clock; default now), for [recovery]
        action_deadline_s.
        """
        received = self._clock() if received is None else received
        pending = Pending(len(faults))
        for index, fault in enumerate(faults):
            if not self.opts.enabled:
                outcome = self.record(fault, SKIPPED, 'disabled', 'skipped because [recovery] enabled is false')
            elif not self._taken.add(self._key(fault)):
                outcome = self.record(fault, SKIPPED, 'duplicate', 'skipped because this incident was handled '
                                      'already')
            elif self.pool.submit(self._decide, fault, received, pending, index):
                continue
            else:
                outcome = self.record(fault, FAILED, 'queue_full', 'failed because %d faults already wait for an '
                                      'action ([recovery] queue_size)' % self.opts.queue_size, std_logging.ERROR)
            pending.set(index, outcome)
        return pending

    def _decide(self, fault: dict[str, Any], received: float, pending: Pending, index: int) -> None:
        outcome = FAILED
        try:
            outcome = self._carry_out(fault, received)
        finally:
            pending.set(index, outcome)

    def fault_cleared(self, fault: dict[str, Any], cleared: dict[str, Any]) -> None:
        """Remember the end of the incident, should no registry be bound."""
        self._cleared.add(self._key(fault))

    def close(self) -> None:
        self.pool.stop(CLOSE_TIMEOUT_S)
        try:
            self.connection.close()
        except Exception:
            LOG.exception('%s sink: closing the API connection failed', self.name)

    # -- for subclasses -----------------------------------------------------------------------------

    def _act(self, action: str, fault: dict[str, Any]) -> None:
        """Carry out ``action`` (one of self.actions) for the fault; raise on failure."""
        raise NotImplementedError

    def _warm_up(self) -> None:
        """Authenticate and discover endpoints now, so the first fault does not pay for it."""
        raise NotImplementedError

    def _check_done(self, action: str, fault: dict[str, Any]) -> None:
        """Raise AlreadyDone if the action was taken since the fault's detection (default: never known)."""

    def compute(self) -> Any:
        """Return the connection's compute proxy."""
        with self._proxy_lock:
            return self.connection.compute

    # -- the decision ---------------------------------------------------------------------------------

    def _carry_out(self, fault: dict[str, Any], received: float) -> str:
        """Look the policy up, check the incident is still open, act; return the outcome."""
        try:
            action, cached = self.policies.get(fault['instance_uuid'])
        except sdk_exceptions.NotFoundException:
            return self.record(fault, SKIPPED, 'not_found', 'skipped because Nova does not know the instance')
        except PolicyUnknown as exc:
            return self.record(fault, FAILED, 'policy_unknown', 'failed because its recovery policy is '
                             'unknown: %s' % exc, std_logging.ERROR)
        except Exception as exc:
            return self.record(fault, FAILED, 'lookup_error', 'failed because looking the instance up in Nova '
                             'failed: %s' % describe_error(exc, self.timeouts), std_logging.ERROR)
        if action not in self.actions:
            return self._not_ours(fault, action)
        what = self.actions[action]
        elapsed = self._clock() - received
        if elapsed > self.opts.action_deadline_s:
            return self.record(fault, FAILED, 'deadline', 'failed because %s was not issued within [recovery] '
                             'action_deadline_s (%.1fs after the fault arrived)' % (what, elapsed),
                             std_logging.ERROR)
        key = self._key(fault)
        if key in self._cleared or not self.is_active(*key):
            return self.record(fault, SKIPPED, 'cleared', 'skipped because the fault cleared before %s was issued'
                             % what)
        try:
            self._check_done(action, fault)
        except AlreadyDone as done:
            return self.record(fault, ALREADY_DONE, action, 'nothing to do: %s' % done)
        except sdk_exceptions.NotFoundException:
            return self.record(fault, SKIPPED, 'not_found', 'skipped because the instance is gone')
        except Exception as exc:
            return self.record(fault, FAILED, 'check_error', 'failed because checking whether %s was done already '
                               'failed: %s' % (what, describe_error(exc, self.timeouts)), std_logging.ERROR)
        LOG.warning('%s sink: instance %s, incident %s: acting: %s (policy %s%s; %.0f ms after detection)',
                    self.name, key[0], key[1], what, action, ', cached' if cached else '',
                    self._since_detection(fault), instance_uuid=key[0])
        try:
            self._act(action, fault)
        except AlreadyDone as done:
            return self.record(fault, ALREADY_DONE, action, 'nothing to do: %s' % done)
        except sdk_exceptions.NotFoundException:
            return self.record(fault, SKIPPED, 'not_found', 'skipped because the instance is gone')
        except Exception as exc:
            return self.record(fault, FAILED, 'action_error', 'failed because %s failed: %s'
                             % (what, describe_error(exc, self.timeouts)), std_logging.ERROR)
        return self.record(fault, ACTED, action, 'done: %s accepted %.0f ms after detection'
                         % (what, self._since_detection(fault)))

    def _not_ours(self, fault: dict[str, Any], action: str) -> str:
        owner = OWNERS[action]
        enabled = owner in self.conf.controller.fault_sinks
        if action == specs.RECOVERY_NONE:
            # Said once per fault: by the "recovery" sink, or by this one when that sink is not loaded.
            level = std_logging.INFO if owner == self.name or not enabled else std_logging.DEBUG
            return self.record(fault, SKIPPED, 'no_policy', 'nothing to do: the flavor asks for no recovery '
                             '(ha_guest:recovery none or unset)', level)
        if enabled:
            return self.record(fault, SKIPPED, 'other_sink', 'left to the %s sink (policy %s)' % (owner, action),
                             std_logging.DEBUG)
        return self.record(fault, SKIPPED, 'sink_missing', 'not done: the flavor asks for %s, but the %s sink is not '
                         'in [controller] fault_sinks' % (action, owner), std_logging.WARNING)

    # -- helpers --------------------------------------------------------------------------------------

    def _fetch_server(self, instance_uuid: str) -> Any:
        return self.compute().get_server(instance_uuid)

    @staticmethod
    def _key(fault: dict[str, Any]) -> tuple[str, str]:
        return (fault['instance_uuid'], fault['incident_id'])

    @staticmethod
    def _since_detection(fault: dict[str, Any]) -> float:
        # detected_at is the compute host's clock: with NTP, good to a few ms.
        return max(0.0, (time.time() - float(fault['detected_at'])) * 1000.0)

    def record(self, fault: dict[str, Any], outcome: str, reason: str, message: str,
               level: int = std_logging.INFO) -> str:
        """Count and log one decision; return ``outcome``."""
        with self._counts_lock:
            self.counts[outcome] += 1
        self.decisions.append((fault['instance_uuid'], fault['incident_id'], outcome, reason))
        LOG.log(level, '%s sink: instance %s, incident %s: %s', self.name, fault['instance_uuid'],
                fault['incident_id'], message, instance_uuid=fault['instance_uuid'])
        return outcome


class RecoverySink(ActionSink):
    """Hard reboot (``ha_guest:recovery=reboot``) or stop (``stop``) through the Nova API."""

    name = 'recovery'
    actions = {specs.RECOVERY_REBOOT: 'a hard reboot through Nova', specs.RECOVERY_STOP: 'a stop through Nova'}

    def _check_done(self, action: str, fault: dict[str, Any]) -> None:
        """Ask Nova: stopped already (stop), or a reboot / stop of the instance since the fault's detection."""
        compute = self.compute()
        instance = fault['instance_uuid']
        if action == specs.RECOVERY_STOP and compute.get_server(instance).status == 'SHUTOFF':
            raise AlreadyDone('the instance is stopped already (SHUTOFF)')
        since = iso_utc(float(fault['detected_at']) - CLOCK_SKEW_S)
        detected = parse_time(since)
        for done in compute.server_actions(instance, changes_since=since):
            started = parse_time(done.start_time)
            if done.action == NOVA_ACTIONS[action] and started is not None and detected is not None \
                    and started >= detected:
                raise AlreadyDone('Nova shows a %s of the instance since the fault was detected (request %s, '
                                  'started %s)' % (done.action, done.request_id, done.start_time))

    def _act(self, action: str, fault: dict[str, Any]) -> None:
        compute = self.compute()
        if action == specs.RECOVERY_REBOOT:
            compute.reboot_server(fault['instance_uuid'], 'HARD')
        else:
            compute.stop_server(fault['instance_uuid'])

    def _warm_up(self) -> None:
        try:
            # A token, the catalog and Nova's version document (microversion negotiation).
            self.compute().get_endpoint_data()
        except Exception as exc:
            LOG.warning('%s sink: Nova not reachable yet (%s); the first fault will try again', self.name,
                        describe_error(exc, self.timeouts))
