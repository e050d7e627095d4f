"""Nova's own lifecycle operations on a watched guest raise no fault and trigger no recovery."""

from __future__ import annotations

import time
from typing import Any

from ha_guest.nova import specs
from tests.cloud import base

#: Seconds a paused or suspended guest is left so: many heartbeat intervals (500 ms), time for a false fault.
HOLD_S = 4.0


class TestCloudLifecycle(base.CloudTestCase):
    """Pause, suspend, stop and reboot through the Nova API: no fault, no recovery, the agent back."""

    def _op(self, server_id: str, body: dict[str, Any], status: str, durations: dict[str, float],
            name: str) -> None:
        start = time.monotonic()
        self._action(server_id, body)
        self._wait_status(server_id, status)
        durations[name] = round(time.monotonic() - start, 2)

    def test_nova_lifecycle_raises_no_fault(self) -> None:
        # recovery=reboot: a false fault would also show as a reboot action by our service user.
        flavor = self._flavor(**{specs.HEARTBEAT: 'true', specs.RECOVERY: specs.RECOVERY_REBOOT})
        server = self._boot(flavor, self._images())
        sid = server['id']
        self._wait_registered(sid)
        self._wait_healthy(sid)
        durations: dict[str, float] = {}

        self._op(sid, {'pause': None}, 'PAUSED', durations, 'pause')
        time.sleep(HOLD_S)
        self._op(sid, {'unpause': None}, 'ACTIVE', durations, 'unpause')
        self._wait_healthy(sid)

        self._op(sid, {'suspend': None}, 'SUSPENDED', durations, 'suspend')
        time.sleep(HOLD_S)
        self._op(sid, {'resume': None}, 'ACTIVE', durations, 'resume')
        t = time.monotonic()
        self._wait_healthy(sid)
        durations['resume_to_healthy'] = round(time.monotonic() - t, 2)

        before = self._console_log(sid)
        self._op(sid, {'os-stop': None}, 'SHUTOFF', durations, 'stop')
        time.sleep(HOLD_S)
        self._op(sid, {'os-start': None}, 'ACTIVE', durations, 'start')
        t = time.monotonic()
        before = self._wait_registered(sid, after=before)
        durations['start_to_registered'] = round(time.monotonic() - t, 2)
        self._wait_healthy(sid)

        for kind in ('SOFT', 'HARD'):
            self._op(sid, {'reboot': {'type': kind}}, 'ACTIVE', durations, 'reboot_%s' % kind.lower())
            t = time.monotonic()
            before = self._wait_registered(sid, after=before)
            durations['reboot_%s_to_registered' % kind.lower()] = round(time.monotonic() - t, 2)
            self._wait_healthy(sid)

        # Late reports would show within a few intervals: give them the time before asking.
        time.sleep(HOLD_S)
        self.figures['lifecycle_s'] = durations
        self.assertEqual([], self._faults(sid), 'a Nova lifecycle operation raised a fault')
        self.assertEqual([], self._our_actions(sid), 'a recovery action was taken for a Nova lifecycle operation')
        self.assertEqual('healthy', self._instance_state(sid))
