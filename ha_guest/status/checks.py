"""The upgrade checks of ``ha-guest-status upgrade check`` (oslo.upgradecheck results).

Run on a host with the config a service will run with, before it is
(re)started on a new release: options that contradict each other, the Nova
settings server group messaging needs, the broker, and the RPC version caps
against the versions the running services report.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from oslo_upgradecheck import upgradecheck
from oslo_upgradecheck.upgradecheck import Code, Result

from ha_guest.status import broker, nova_conf
from ha_guest.status.context import Status
from ha_guest.status.errors import StatusError

#: Where Nova's config is looked for when --nova-config is not given.
DEFAULT_NOVA_CONFIG = '/etc/nova/nova.conf'


def parse_version(text: Optional[str]) -> Optional[tuple[int, int]]:
    """Return "1.4" as (1, 4); None for None; ValueError for anything else."""
    if text is None:
        return None
    major, minor = text.strip().split('.')
    return int(major), int(minor)


def _worst(problems: list[tuple[Code, str]], ok: str) -> Result:
    if not problems:
        return Result(Code.SUCCESS, ok)
    code = max(code for code, _ in problems)
    return Result(code, ' '.join(text for _, text in problems))


def contradictions(conf: Any) -> list[tuple[Code, str]]:
    """Return the options of ``conf`` that contradict each other (pure: the unit tests call it)."""
    problems: list[tuple[Code, str]] = []
    compute, controller, rpc = conf.compute, conf.controller, conf.rpc
    if compute.min_interval_ms > compute.max_interval_ms:
        problems.append((Code.FAILURE, '[compute] min_interval_ms %d is above max_interval_ms %d.' % (
            compute.min_interval_ms, compute.max_interval_ms)))
    if compute.tick_ms > compute.min_interval_ms:
        problems.append((Code.WARNING, '[compute] tick_ms %d is above min_interval_ms %d: challenges go out '
                         'only once a tick.' % (compute.tick_ms, compute.min_interval_ms)))
    if compute.reconnect_min_s > compute.reconnect_max_s:
        problems.append((Code.FAILURE, '[compute] reconnect_min_s %g is above reconnect_max_s %g.' % (
            compute.reconnect_min_s, compute.reconnect_max_s)))
    if compute.flap_hold_down_s > compute.flap_max_hold_down_s:
        problems.append((Code.FAILURE, '[compute] flap_hold_down_s %g is above flap_max_hold_down_s %g.' % (
            compute.flap_hold_down_s, compute.flap_max_hold_down_s)))
    if controller.agent_down_time_s <= 2 * compute.state_report_interval_s:
        problems.append((Code.WARNING, '[controller] agent_down_time_s %g is not above two '
                         '[compute] state_report_interval_s (%d s): one late report would raise a host '
                         'fault.' % (controller.agent_down_time_s, compute.state_report_interval_s)))
    caps = {}
    for name in ('controller_version_cap', 'controller_sync_version_cap', 'compute_version_cap'):
        try:
            caps[name] = parse_version(rpc[name])
        except ValueError:
            problems.append((Code.FAILURE, '[rpc] %s %r is not a version like "1.2".' % (name, rpc[name])))
    cap = caps.get('controller_version_cap')
    if conf.sgm.enabled and cap is not None and cap < (1, 1):
        problems.append((Code.FAILURE, '[sgm] enabled is true but [rpc] controller_version_cap %s is below 1.1, '
                         'the API of server group messaging.' % rpc.controller_version_cap))
    sync_cap = caps.get('controller_sync_version_cap')
    if controller.alarm_unregistered and sync_cap is not None and sync_cap < (1, 2):
        problems.append((Code.FAILURE, '[controller] alarm_unregistered is true but [rpc] '
                         'controller_sync_version_cap %s is below 1.2: the agent watch is off.'
                         % rpc.controller_sync_version_cap))
    problems += _caps_known(caps)
    return problems


def _caps_known(caps: dict[str, Optional[tuple[int, int]]]) -> list[tuple[Code, str]]:
    from ha_guest.rpc.compute_api import COMPUTE_API_VERSION
    from ha_guest.rpc.controller_api import CONTROLLER_API_VERSION
    from ha_guest.rpc.sync_api import CONTROLLER_SYNC_API_VERSION

    known = {'controller_version_cap': CONTROLLER_API_VERSION, 'compute_version_cap': COMPUTE_API_VERSION,
             'controller_sync_version_cap': CONTROLLER_SYNC_API_VERSION}
    problems = []
    for name, cap in caps.items():
        newest = parse_version(known[name])
        if cap is not None and newest is not None and (cap[0] != newest[0] or cap > newest):
            problems.append((Code.FAILURE, '[rpc] %s %d.%d is not a version this release knows (newest %s).'
                             % (name, cap[0], cap[1], known[name])))
    return problems


def nova_problems(settings: nova_conf.NovaSettings, sgm: Any) -> list[tuple[Code, str]]:
    """Return what in Nova's settings keeps server group messaging from learning state changes (pure)."""
    problems: list[tuple[Code, str]] = []
    where = ', '.join(settings.files)
    fmt = settings.first('notifications', 'notification_format')
    if fmt not in ('versioned', 'both'):
        problems.append((Code.FAILURE, '%s: [notifications] notification_format is %r; set versioned (or both).'
                         % (where, fmt)))
    drivers = settings.listed('oslo_messaging_notifications', 'driver')
    if 'messagingv2' not in drivers:
        problems.append((Code.FAILURE, '%s: [oslo_messaging_notifications] driver is %s; add messagingv2.'
                         % (where, ', '.join(drivers) or 'unset (no notifications)')))
    topics = settings.listed('notifications', 'versioned_notifications_topics')
    if not set(topics) & set(sgm.notification_topics):
        problems.append((Code.FAILURE, '%s: Nova sends versioned notifications to %s, [sgm] notification_topics '
                         'listens on %s.' % (where, ', '.join(topics), ', '.join(sgm.notification_topics))))
    exchange = settings.first('DEFAULT', 'control_exchange')
    if exchange != sgm.notification_exchange:
        problems.append((Code.FAILURE, '%s: Nova\'s control_exchange is %r, [sgm] notification_exchange %r.'
                         % (where, exchange, sgm.notification_exchange)))
    return problems


class UpgradeChecks(upgradecheck.UpgradeCommands):
    """ha_guest's checks; ``run()`` returns (name, Result) pairs for cliff to format."""

    display_title = 'ha_guest upgrade check results'

    def __init__(self, status: Status, nova_configs: Optional[list[str]] = None) -> None:
        self.status = status
        self.nova_configs = nova_configs
        self._broker_ok = True

    def _check_options(self) -> Result:
        return _worst(contradictions(self.status.conf), 'No options contradict each other.')

    def _check_nova_notifications(self) -> Result:
        sgm = self.status.conf.sgm
        if not sgm.enabled:
            return Result(Code.SUCCESS, 'Not needed: [sgm] enabled is false.')
        paths = self.nova_configs
        if not paths:
            if not os.path.isfile(DEFAULT_NOVA_CONFIG):
                return Result(Code.WARNING, 'Not checked: no %s here; give Nova\'s config with --nova-config '
                              '(on a nova-compute host or a conductor\'s).' % DEFAULT_NOVA_CONFIG)
            paths = [DEFAULT_NOVA_CONFIG]
        try:
            settings = nova_conf.read(paths)
        except (OSError, ValueError) as exc:
            return Result(Code.FAILURE, 'Nova config unreadable: %s' % exc)
        return _worst(nova_problems(settings, sgm), 'Nova sends versioned notifications where [sgm] listens '
                      '(%s).' % ', '.join(settings.files))

    def _check_broker(self) -> Result:
        conf = self.status.conf
        results = broker.probe(conf, timeout=min(self.status.timeout, 5.0))
        text = '%s: %s.' % (broker.masked(conf), '; '.join(r.describe() for r in results))
        if all(r.ok for r in results):
            return Result(Code.SUCCESS, text)
        self._broker_ok = any(r.ok for r in results)
        return Result(Code.WARNING if self._broker_ok else Code.FAILURE, text)

    def _check_rpc_versions(self) -> Result:
        if not self._broker_ok:
            return Result(Code.FAILURE, 'Not checked: the broker is unreachable.')
        try:
            return _worst(self._version_problems(), 'The version caps allow what the running services speak.')
        except StatusError as exc:
            return Result(Code.FAILURE, str(exc))

    def _version_problems(self) -> list[tuple[Code, str]]:
        from ha_guest.rpc.compute_api import COMPUTE_API_VERSION

        status = self.status
        api = status.controller
        if not api.can_send_version('1.4'):
            return [(Code.WARNING, 'Not compared: [rpc] controller_version_cap %s is below 1.4, which lists '
                     'the running services\' versions.' % api.version_cap)]
        answer = status.call('upgrade check', api.list_agents, None, None, version='1.4')
        problems: list[tuple[Code, str]] = []
        controller = answer.get('controller') or {}
        if parse_version(controller.get('rpc_api')) != parse_version(api.VERSION):
            problems.append((Code.WARNING, 'Controller %s speaks controller API %s, this release %s.' % (
                controller.get('host'), controller.get('rpc_api'), api.VERSION)))
        cap = parse_version(status.conf.rpc.compute_version_cap) or parse_version(COMPUTE_API_VERSION)
        older = [(agent['host'], agent.get('rpc_api') or '1.1') for agent in answer.get('agents', [])
                 if (parse_version(agent.get('rpc_api') or '1.1') or (1, 1)) < (cap or (1, 0))]
        if older:
            problems.append((Code.WARNING, '[rpc] compute_version_cap %s is above what compute agents speak '
                             '(%s): set it to the oldest until they run this release.' % (
                                 status.conf.rpc.compute_version_cap or 'unset (%s)' % COMPUTE_API_VERSION,
                                 ', '.join('%s %s' % item for item in older[:10]))))
        silent = [agent['host'] for agent in answer.get('agents', []) if agent.get('status') != 'alive']
        if silent:
            problems.append((Code.WARNING, 'Silent compute agents (their versions may be stale): %s.'
                             % ', '.join(silent[:10])))
        if not problems:
            return []
        return problems

    _upgrade_checks = (
        ('Options', _check_options),
        ('Nova notifications', _check_nova_notifications),
        ('Broker', _check_broker),
        ('RPC versions', _check_rpc_versions),
    )

    def run(self) -> list[tuple[str, Result]]:
        """Run every check in order."""
        return [(name, func(self)) for name, func in self._upgrade_checks]
