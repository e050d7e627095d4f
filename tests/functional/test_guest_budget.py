"""Guest budgets on real sockets: 200 healthy guests at 100 ms and one guest flooding its channel."""

from __future__ import annotations

import os
import sys
import time

from testtools import content

from ha_guest.testing import wait_for
from ha_guest.testing.bench_procs import GuestHelper, HelperProcess
from tests.functional.base import TIMEOUT
from tests.functional.test_compute_agent import ComputeAgentTestCase

HEALTHY = 200
ATTACK_S = 4.0
#: One hostile guest per kind of flood (ha_guest.testing.hostile_guests), 64 KiB 16 times a second.
KINDS = ('lf', 'junk', 'partial', 'oversized')


def thread_cpu_seconds(native_id: int) -> float:
    """CPU time of one thread of this process (Linux), for the figures printed, never asserted."""
    with open('/proc/self/task/%d/stat' % native_id) as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class TestGuestBudgetUnderAttack(ComputeAgentTestCase):
    """The compute agent (in process: its counters are at hand) with every guest in a helper process."""

    def setUp(self) -> None:
        super().setUp()
        self.healthy = GuestHelper(0, self.host_dir, HEALTHY, 100, os.path.join(self.tmp, 'healthy.log'))
        self.addCleanup(self.healthy.stop)
        self.healthy_uuids = self.healthy.read_ready()
        self.hostile = HelperProcess(1, ['-m', 'ha_guest.testing.hostile_guests', '--folder', self.host_dir,
                                         '--guests', str(len(KINDS))], os.path.join(self.tmp, 'hostile.log'))
        self.addCleanup(self.hostile.stop)
        self.bad = dict(zip(KINDS, self.hostile.read()['ready'], strict=True))
        manager = self.start_compute()
        wait_for(lambda: self.healthy.ask('status')['registered'] == HEALTHY
                 and self.hostile.ask('status')['registered'] == len(KINDS), TIMEOUT, 0.2, 'every guest to register')
        for instance in self.bad.values():
            self.wait_watched(instance)
        self.loop_thread = manager._thread.native_id
        assert self.loop_thread is not None

    def counters(self, instance: str) -> dict[str, int]:
        assert self.manager is not None
        return self.manager.call(lambda: dict(self.manager.instances[instance].channel.counters))  # type: ignore

    def healthy_answers(self) -> dict[str, int]:
        assert self.manager is not None
        stats = self.manager.all_instance_stats()
        return {uuid: stats[uuid].responses for uuid in self.healthy_uuids}

    def agent_cpu_percent(self, seconds: float) -> float:
        before, t0 = thread_cpu_seconds(self.loop_thread), time.monotonic()
        time.sleep(seconds)
        return 100.0 * (thread_cpu_seconds(self.loop_thread) - before) / (time.monotonic() - t0)

    def test_floods_cost_the_agent_little_and_hide_no_hang(self) -> None:
        figures = {'baseline': self.agent_cpu_percent(2.0)}
        for kind, bad in self.bad.items():
            answers = self.healthy_answers()
            self.hostile.ask('flood %s %s' % (kind, bad))
            figures[kind] = self.agent_cpu_percent(ATTACK_S)  # printed, not asserted
            counters = self.counters(bad)
            self.assertGreater(counters['paused'], 0, kind)
            self.assertGreater(counters['bytes_dropped'], 0, kind)
            # Every healthy guest kept answering (and, below, none raised an alarm).
            after = self.healthy_answers()
            self.assertEqual([], [uuid for uuid in answers if after[uuid] <= answers[uuid]], kind)
            # The hostile guest stops answering (and flooding): it is reported, it did not escape monitoring.
            self.hostile.ask('hang %s' % bad)
            self.hostile.ask('flood off %s' % bad)
            wait_for(lambda bad=bad: self.controller.of('report_fault', bad), TIMEOUT,
                     message='%s guest reported' % kind)
            wait_for(lambda bad=bad: self.monitor_state(bad) == 'failed', TIMEOUT, message='%s guest failed' % kind)
            self.addDetail('%s-counters' % kind, content.text_content(repr(counters)))
        self.assertEqual([], [f for f in self.controller.of('report_fault') if f.get('instance_uuid')
                              not in self.bad.values()])
        text = ', '.join('%s %.1f %%' % item for item in figures.items())
        sys.stderr.write('\nagent loop thread CPU (of a core): %s\n' % text)
        self.addDetail('agent-cpu-percent', content.text_content(text))
