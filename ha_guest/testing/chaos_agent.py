"""Chaos drill ``dead_agent``: a compute agent killed -9 stays away; the controllers notice it.

Two controllers watch one compute agent that reports its state every second
([controller] agent_down_time_s = 3). While it reports, nothing is raised; once
it is killed -9, one host-scoped fault (``ha_guest.host.fault.raised``, kind
``agent_silent``) must come, once across both controllers, within
agent_down_time_s plus a report interval and a margin; when the agent starts
again, one ``ha_guest.host.fault.cleared``. Its healthy guests raise nothing.
"""

from __future__ import annotations

import time
from typing import Any

from ha_guest.testing.chaos_rig import HOST_CLEARED, HOST_RAISED, RAISED, running

AGENT_DOWN_TIME_S = 3.0
REPORT_INTERVAL_S = 1  # an IntOpt
#: The controllers' beats on the peer sync: a started controller listens for two before it may decide.
PEER_BEAT_S = 0.5
#: Allowed beyond agent_down_time_s: a report interval, the leader's check period, delivery.
MARGIN_S = REPORT_INTERVAL_S + PEER_BEAT_S + 2.0
GUESTS = 10
HOST = 'chaos-compute'


def _of_host(events: list[tuple[float, dict[str, Any]]], since: float) -> list[tuple[float, dict[str, Any]]]:
    return [(t, p) for t, p in events if t >= since and p.get('host') == HOST]


def run(drill: Any) -> None:
    """Kill -9 the compute agent; time the host fault; start it again; the fault clears; each once."""
    verdict = drill.verdict
    controller = {'agent_down_time_s': AGENT_DOWN_TIME_S, 'peer_beat_interval_s': PEER_BEAT_S}
    compute = {'state_report_interval_s': REPORT_INTERVAL_S}
    with running(drill, 'dead_agent') as rig:
        guests = rig.start_guests(GUESTS)
        since = time.time()
        rig.start_controller('controller-a', controller=controller)
        rig.start_controller('controller-b', controller=controller)
        rig.start_compute(compute=compute)
        time.sleep(AGENT_DOWN_TIME_S + 2 * REPORT_INTERVAL_S + 2 * PEER_BEAT_S)  # a reporting agent is never silent
        verdict.equal('raised_while_reporting', len(_of_host(rig.events(HOST_RAISED), since)), 0)
        killed = rig.kill9('compute')
        deadline = time.monotonic() + AGENT_DOWN_TIME_S + MARGIN_S + 10.0
        while not _of_host(rig.events(HOST_RAISED), killed) and time.monotonic() < deadline:
            time.sleep(0.05)
        raised = _of_host(rig.events(HOST_RAISED), killed)
        if verdict.expect(bool(raised), 'no %s for %s within %.0f s of its kill -9'
                          % (HOST_RAISED, HOST, AGENT_DOWN_TIME_S + MARGIN_S + 10.0)):
            verdict.at_most('time_to_raise_s', round(raised[0][0] - killed, 2), AGENT_DOWN_TIME_S + MARGIN_S, ' s')
            verdict.figures['raised_payload_kind'] = raised[0][1].get('kind')
        time.sleep(2.0)  # the other controller's raise, if it doubled, would come now
        verdict.equal('host_faults_raised', len(_of_host(rig.events(HOST_RAISED), killed)), 1)
        back = time.time()
        rig.start_compute(compute=compute)
        deadline = time.monotonic() + 15.0
        while not _of_host(rig.events(HOST_CLEARED), back) and time.monotonic() < deadline:
            time.sleep(0.05)
        cleared = _of_host(rig.events(HOST_CLEARED), back)
        if verdict.expect(bool(cleared), 'no %s for %s within 15 s of its return' % (HOST_CLEARED, HOST)):
            verdict.figures['time_to_clear_s'] = round(cleared[0][0] - back, 2)
            verdict.equal('cleared_incident_matches', cleared[0][1].get('incident_id'),
                          raised[0][1].get('incident_id') if raised else None)
        time.sleep(AGENT_DOWN_TIME_S + REPORT_INTERVAL_S)  # back for good: no new raise, no second clear
        verdict.equal('host_faults_cleared', len(_of_host(rig.events(HOST_CLEARED), killed)), 1)
        verdict.equal('host_faults_raised_total', len(_of_host(rig.events(HOST_RAISED), since)), 1)
        verdict.equal('guest_false_alarms',
                      len([p for t, p in rig.events(RAISED) if t >= since and p.get('instance_uuid') in guests]), 0)
