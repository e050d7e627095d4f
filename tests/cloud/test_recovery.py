"""Recovery through the real Nova: a hung guest stopped, an unhealthy guest rebooted, by our service user."""

from __future__ import annotations

import time
import uuid
from typing import Any

from ha_guest.nova import specs
from ha_guest.testing.waiting import wait_for
from tests.cloud import base


class TestCloudRecovery(base.CloudTestCase):
    """ha_guest:recovery on real servers: the fault, the Nova instance action, the server's new state."""

    def _registered_server(self, recovery: str) -> dict[str, Any]:
        flavor = self._flavor(**{specs.HEARTBEAT: 'true', specs.RECOVERY: recovery})
        server = self._boot(flavor, self._images())
        self._wait_registered(server['id'])
        self._wait_healthy(server['id'])
        return server

    def _wait_our_action(self, server_id: str, action: str) -> dict[str, Any]:
        """Wait for an instance action ``action`` made by the ha_guest service user; return it."""
        def made() -> Any:
            found = [a for a in self._our_actions(server_id) if a['action'] == action]
            return found[0] if found else None

        return dict(wait_for(made, base.STATE_TIMEOUT_S, interval=0.3,
                             message='a %r instance action by the ha_guest service user on %s' % (action,
                                                                                                server_id)))

    def _fault(self, server_id: str, kind: str) -> dict[str, Any]:
        """Wait for the controller to know a fault of ``kind`` for the server; return it."""
        def known() -> Any:
            found = [f for f in self._faults(server_id) if f['Kind'] == kind]
            return found[0] if found else None

        return dict(wait_for(known, 60, interval=1.0, message='a %s fault of %s' % (kind, server_id)))

    def test_hung_agent_stopped(self) -> None:
        server = self._registered_server(specs.RECOVERY_STOP)
        with self._console(server) as console:
            console.send('hang')
            hung = time.monotonic()
        action = self._wait_our_action(server['id'], 'stop')
        to_action = time.monotonic() - hung
        self._wait_status(server['id'], 'SHUTOFF')
        to_shutoff = time.monotonic() - hung
        self.figures['recovery_stop'] = {'hang_to_stop_action_s': round(to_action, 2),
                                         'hang_to_shutoff_s': round(to_shutoff, 2)}
        fault = self._fault(server['id'], 'missed')
        self.assertIn('challenge', fault['Reason'])
        # One action, by the service user and nobody else: no reboot besides the stop.
        self.assertEqual(['stop'], [a['action'] for a in self._our_actions(server['id'])])
        self.assertEqual(['create', 'stop'], sorted(a['action'] for a in self._instance_actions(server['id'])))
        self.assertEqual('SHUTOFF', self._server(server['id'])['status'], action)

    def test_unhealthy_guest_rebooted(self) -> None:
        server = self._registered_server(specs.RECOVERY_REBOOT)
        before = self._console_log(server['id'])
        with self._console(server) as console:
            console.send('fail-check cloud test says no')
            failed = time.monotonic()
        self._wait_our_action(server['id'], 'reboot')
        to_action = time.monotonic() - failed
        fault = self._fault(server['id'], 'unhealthy')
        self.assertIn('cloud test says no', fault['Reason'])
        # A hard reboot starts the RAM-only guest afresh: its check passes again, its agent registers
        # again and ha-guest-compute sees it healthy; the fault ends.
        self._wait_registered(server['id'], after=before)
        to_registered = time.monotonic() - failed
        self._wait_healthy(server['id'])
        self._wait_status(server['id'], 'ACTIVE')
        with self._console(server) as console:
            console.send('pass-check')
        wait_for(lambda: all(f['State'] == 'cleared' for f in self._faults(server['id'])), 60, interval=1.0,
                 message='the unhealthy fault of %s to be cleared' % server['id'])
        self.assertEqual(['reboot'], [a['action'] for a in self._our_actions(server['id'])])
        self.figures['recovery_reboot_unhealthy'] = {'fail_check_to_reboot_action_s': round(to_action, 2),
                                                     'fail_check_to_registered_again_s': round(to_registered, 2)}

    def test_hung_agent_recovered_by_masakari(self) -> None:
        # The masakari sink posts a VM notification about the compute host; Masakari's engine then
        # recovers the instance (stop, start) with its own user, provided the host is in a segment.
        ha = self.conn.instance_ha
        segment = ha.create_segment(name='ha-guest-%s' % uuid.uuid4().hex[:6], recovery_method='auto',
                                    service_type='COMPUTE')
        self.addCleanup(ha.delete_segment, segment, ignore_missing=True)
        host = ha.create_host(segment.uuid, name=self.cloud.layout.host, type='COMPUTE', control_attributes='SSH')
        self.addCleanup(ha.delete_host, host.uuid, segment.uuid, ignore_missing=True)
        server = self._registered_server(specs.RECOVERY_MASAKARI)
        before = self._console_log(server['id'])
        with self._console(server) as console:
            console.send('hang')
            hung = time.monotonic()

        def notification() -> Any:
            found = [n for n in ha.notifications() if n.payload.get('instance_uuid') == server['id']]
            return found[0] if found else None

        listed = wait_for(notification, base.STATE_TIMEOUT_S, interval=0.5,
                          message='a Masakari notification about %s' % server['id'])
        to_notification = time.monotonic() - hung
        posted = ha.get_notification(listed.notification_uuid)  # the listing leaves some fields out
        self.assertEqual(('VM', host.uuid), (posted.type, posted.source_host_uuid))
        self.assertEqual('LIFECYCLE', posted.payload['event'])
        finished = wait_for(lambda: ha.get_notification(posted.notification_uuid).status in ('finished', 'failed',
                                                                                             'error'),
                            base.STATE_TIMEOUT_S, interval=1.0, message='masakari-engine to finish the recovery')
        self.assertTrue(finished)
        self.assertEqual('finished', ha.get_notification(posted.notification_uuid).status)
        to_finished = time.monotonic() - hung
        self._wait_registered(server['id'], after=before)
        to_registered = time.monotonic() - hung
        self._wait_status(server['id'], 'ACTIVE')
        masakari = str(self.conn.identity.find_user('masakari', ignore_missing=False).id)
        by_masakari = sorted(a['action'] for a in self._instance_actions(server['id']) if a['user_id'] == masakari)
        self.assertEqual(['start', 'stop'], by_masakari)
        # Our own recovery sink left this fault to Masakari: no action by our service user.
        self.assertEqual([], self._our_actions(server['id']))
        self.figures['recovery_masakari'] = {'hang_to_notification_s': round(to_notification, 2),
                                             'hang_to_engine_finished_s': round(to_finished, 2),
                                             'hang_to_registered_again_s': round(to_registered, 2)}
