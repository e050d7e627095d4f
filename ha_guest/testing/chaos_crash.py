"""Chaos drills ``controller_kill``, ``two_controllers`` and ``compute_kill``: our services die by kill -9.

Recovery runs through the recovery sink against the Nova stub
(ha_guest.testing.openstack_stub), which records every action: each incident
must get exactly one action, one ``fault.raised`` and one ``fault.cleared``,
whichever process died when.

* controller_kill: guests hang; the controller accepts their faults (their
  notifications are out) while Nova answers slowly (half the servers' GET,
  half the servers' actions take a second), so the kill -9 lands between
  accepting and acting, or while an action is under way; the controller starts
  again.
* two_controllers: the same with two controllers, one killed; a second storm
  with both alive (a state report racing the peer sync must not raise twice).
* compute_kill: the compute agent is killed -9 within ~0.3 s of the hangs and
  started again on the same state file: the same incidents (ids) go on.
"""

from __future__ import annotations

import collections
import random
import time
from typing import Any

from ha_guest.testing.chaos_checks import duplicates, wait_events
from ha_guest.testing.chaos_rig import CLEARED, RAISED, Rig, running

GUESTS = 30
HANGS = 12
#: Nova's slowness while the controller is killed: the kill lands inside the recovery work.
NOVA_DELAY_S = 1.0
#: How long the restarted controllers get to finish the recovery of every incident.
RECOVERY_TIMEOUT_S = 30.0


def _slow_nova(rig: Rig, sample: list[str]) -> None:
    for index, instance in enumerate(sample):
        if index % 2:
            rig.stub.change_server(instance, action_delay=NOVA_DELAY_S)
        else:
            rig.stub.change_server(instance, get_delay=NOVA_DELAY_S)


def _fast_nova(rig: Rig, sample: list[str]) -> None:
    for instance in sample:
        rig.stub.change_server(instance, action_delay=0.0, get_delay=0.0)


def _actions_per_incident(rig: Rig, sample: list[str], timeout: float) -> dict[str, int]:
    """Wait (bounded) until every instance of ``sample`` had an action; return how many each had."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(rig.stub.actions(i) for i in sample):
        rig.check()
        time.sleep(0.1)
    time.sleep(2.0)  # a late second action would come now
    return {instance: len(rig.stub.actions(instance)) for instance in sample}


def _check_once(drill: Any, rig: Rig, prefix: str, sample: list[str], healthy: set[str], since: float) -> None:
    """Exactly one action, one raised, one cleared (same incident id) per incident; nothing for the others."""
    verdict = drill.verdict
    actions = _actions_per_incident(rig, sample, RECOVERY_TIMEOUT_S)
    counts = collections.Counter(actions.values())
    verdict.figures['%s_actions_per_incident' % prefix] = {str(k): v for k, v in sorted(counts.items())}
    verdict.expect(set(actions.values()) == {1}, '%s: recovery actions per incident %s, expected exactly 1 each'
                   % (prefix, dict(counts)))
    resumed = time.time()
    rig.resume(sample)
    cleared = wait_events(rig, CLEARED, sample, resumed, 20.0)
    verdict.equal('%s_not_cleared' % prefix, len(sample) - len(cleared), 0)
    time.sleep(1.5)
    raised = [(t, p) for t, p in rig.events(RAISED) if t >= since]
    cleared_all = [(t, p) for t, p in rig.events(CLEARED) if t >= since]
    verdict.equal('%s_lost' % prefix, len(set(sample) - {p.get('instance_uuid') for _, p in raised}), 0)
    verdict.equal('%s_duplicate_raised' % prefix, sum(n - 1 for n in duplicates(raised, 'incident_id').values()), 0)
    verdict.equal('%s_duplicate_cleared' % prefix,
                  sum(n - 1 for n in duplicates(cleared_all, 'incident_id').values()), 0)
    ids: dict[str, set[str]] = collections.defaultdict(set)
    for _, payload in raised + cleared_all:
        ids[str(payload.get('instance_uuid'))].add(str(payload.get('incident_id')))
    verdict.equal('%s_incidents_with_several_ids' % prefix, sum(len(v) > 1 for v in ids.values()), 0)
    verdict.equal('%s_false_alarms' % prefix, len([p for _, p in raised if p.get('instance_uuid') in healthy]), 0)
    other = [r for r in rig.stub.actions() if r.path.split('/')[-2] in healthy]
    verdict.equal('%s_actions_on_healthy' % prefix, len(other), 0)


def _kill_after_accept(drill: Any, rig: Rig, sample: list[str], victim: str) -> float:
    """Hang ``sample`` with Nova slow; kill -9 ``victim`` once every fault was accepted; return the hang time."""
    _slow_nova(rig, sample)
    since = time.time()
    rig.hang(sample)
    accepted = wait_events(rig, RAISED, sample, since, 10.0)
    rig.kill9(victim)
    acted = sum(bool(rig.stub.actions(i)) for i in sample)
    drill.log('%s killed -9 after %d of %d faults accepted, %d actions issued'
              % (victim, len(accepted), len(sample), acted))
    drill.verdict.figures.setdefault('actions_issued_before_kill', []).append(acted)
    _fast_nova(rig, sample)
    return since


def run_controller_kill(drill: Any) -> None:
    """One controller, killed -9 between accepting faults and acting on them, started again."""
    with running(drill, 'controller_kill', recovery=True) as rig:
        rig.with_stub()
        guests = rig.start_guests(GUESTS)
        rig.start_controller()
        rig.start_compute()
        time.sleep(1.0)
        sample = random.sample(guests, HANGS)
        since = _kill_after_accept(drill, rig, sample, 'controller')
        t0 = time.monotonic()
        rig.start_controller()
        drill.verdict.figures['controller_restart_s'] = round(time.monotonic() - t0, 1)
        _check_once(drill, rig, 'killed', sample, set(guests) - set(sample), since)


def run_two_controllers(drill: Any) -> None:
    """Two controllers: a storm with both alive, then one killed -9 mid-recovery (and started again)."""
    with running(drill, 'two_controllers', recovery=True) as rig:
        rig.with_stub()
        guests = rig.start_guests(GUESTS)
        rig.start_controller('controller-a')
        rig.start_controller('controller-b')
        rig.start_compute(compute={'state_report_interval_s': 1})  # many reports racing the peer sync
        time.sleep(1.0)
        first, second, healthy = guests[:HANGS], guests[HANGS:2 * HANGS], set(guests[2 * HANGS:])
        since = time.time()
        rig.hang(first)
        _check_once(drill, rig, 'both_alive', first, healthy, since)
        since = _kill_after_accept(drill, rig, second, 'controller-a')
        time.sleep(1.0)
        rig.start_controller('controller-a')
        _check_once(drill, rig, 'one_killed', second, healthy, since)


def run_compute_kill(drill: Any) -> None:
    """The compute agent killed -9 within ~0.3 s of its guests' hangs, started again on the same state file."""
    with running(drill, 'compute_kill', recovery=True) as rig:
        rig.with_stub()
        guests = rig.start_guests(GUESTS)
        rig.start_controller()
        rig.start_compute()
        time.sleep(1.0)
        verdict = drill.verdict
        delays = []
        for round_index in range(2):
            sample = guests[round_index * HANGS:(round_index + 1) * HANGS]
            since = time.time()
            rig.hang(sample)
            delay = random.uniform(0.1, 0.35)
            time.sleep(delay)
            rig.kill9('compute')
            delays.append(round(delay, 2))
            before = len(wait_events(rig, RAISED, sample, since, 0.0))
            drill.log('compute agent killed -9 %.2f s after the hangs (%d faults out)' % (delay, before))
            t0 = time.monotonic()
            rig.start_compute()
            verdict.figures.setdefault('compute_restart_registered_s', []).append(round(time.monotonic() - t0, 1))
            _check_once(drill, rig, 'round_%d' % (round_index + 1), sample, set(guests[2 * HANGS:]), since)
        verdict.figures['kill_after_hang_s'] = delays
