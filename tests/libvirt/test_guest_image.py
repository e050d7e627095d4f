"""The guest image (tools/build-guest-image.py) booted by a real libvirtd, watched by the real compute agent.

One TCG boot for the whole module: the domain has Nova's shape (kernel and
initrd, ``<serial type='pty'>``, our unix virtio channel in bind mode); the
compute agent (ComputeManager, directory discovery pointed at the socket
libvirt made) registers the guest's agent; the serial console
(ha_guest.testing.guest_console) then makes the guest misbehave step by step.
Figures (boot to registration, detection times) are attached as a detail and
written to $HA_GUEST_FIGURES when set.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import fixtures
from oslo_config import cfg
from testtools import content

from ha_guest.compute.manager import ComputeManager
from ha_guest.conf import compute as compute_conf
from ha_guest.conf import default as default_conf
from ha_guest.protocol.constants import host_socket_path
from ha_guest.testing import guest_console, guest_image, wait_for
from tests.libvirt import base

#: TCG boots take 8-15 s on an idle machine; the machine is shared.
BOOT_TIMEOUT_S = 120.0
STEP_TIMEOUT_S = 30.0
HOST = 'compute-image'


class RecordingController:
    """Stands in for the controller's RPC API: records every report (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: List[Tuple[str, Dict[str, Any]]] = []

    def _record(self, name: str, payload: Dict[str, Any]) -> Any:
        with self._lock:
            self.calls.append((name, payload))
        return {'duplicate': False} if name == 'report_fault' else None

    def report_fault(self, ctxt: Any, fault: Dict[str, Any]) -> Any:
        return self._record('report_fault', fault)

    def report_recovery(self, ctxt: Any, recovery: Dict[str, Any]) -> Any:
        return self._record('report_recovery', recovery)

    def report_exit(self, ctxt: Any, exit: Dict[str, Any]) -> Any:
        return self._record('report_exit', exit)

    def report_state(self, ctxt: Any, report: Dict[str, Any]) -> Any:
        return self._record('report_state', report)

    def sgm_broadcast(self, ctxt: Any, broadcasts: List[Dict[str, Any]], timeout: Optional[float] = None,
                      retry: Optional[int] = None) -> None:
        for item in broadcasts:
            self._record('sgm_broadcast', dict(item, instance_uuid=item['sender']))

    def sgm_status(self, ctxt: Any, instance_uuid: str, timeout: Optional[float] = None,
                   retry: Optional[int] = None) -> Dict[str, Any]:
        return {'nack': 'no_group', 'detail': 'not in a server group'}

    def of(self, name: str, instance: str) -> List[Dict[str, Any]]:
        with self._lock:
            return [p for n, p in self.calls if n == name and p.get('instance_uuid') == instance]


class TestGuestImage(base.DiscoveryTestCase):
    """Boot once, then: register, unhealthy, healthy again, hang, resume, clean exit, start again."""

    URI = base.SYSTEM_URI

    def setUp(self) -> None:
        super().setUp()
        self.figures: Dict[str, Any] = {}
        self.addCleanup(self._attach_figures)
        started = time.monotonic()
        try:
            self.image = guest_image.build_image()
        except guest_image.ImageError as exc:
            raise AssertionError(str(exc)) from exc
        self.figures['image_build_or_cache_s'] = round(time.monotonic() - started, 2)
        self.figures['image_bytes'] = self.image.manifest['sizes']
        try:
            self.conn = self.libvirt.open(base.SYSTEM_URI)
        except self.libvirt.libvirtError as exc:
            raise AssertionError('libvirtd does not answer on %s (%s): run `bash tools/ensure-libvirt.sh` as root'
                                 % (base.SYSTEM_URI, exc)) from exc
        self.addCleanup(self.conn.close)
        self.controller = RecordingController()
        self.addCleanup(self._attach_reports)

    def start_compute(self, channels: str) -> ComputeManager:
        conf = cfg.ConfigOpts()
        compute_conf.register_opts(conf)
        default_conf.register_opts(conf)
        conf([])
        # A miss threshold of 3: a TCG guest on a shared machine may be late once without hanging.
        for key, value in (('discovery_driver', 'directory'), ('directory_path', channels),
                           ('state_file', os.path.join(channels, 'state.json')), ('miss_threshold', 3),
                           ('reconnect_min_s', 0.05), ('reconnect_max_s', 0.5), ('flap_hold_down_s', 0.0)):
            conf.set_override(key, value, 'compute')
        manager = ComputeManager(conf, self.controller, host=HOST)  # type: ignore[arg-type]
        manager.start()
        self.addCleanup(manager.stop, 0.5)
        return manager

    def boot(self) -> Tuple[str, str, float]:
        name, domain_uuid = self.new_name()
        dom = self.conn.defineXML(guest_image.domain_xml(name, domain_uuid, self.image))
        self.addCleanup(self._remove, dom)
        started = time.monotonic()
        dom.create()
        return name, domain_uuid, started

    def _remove(self, dom: Any) -> None:
        for action in (dom.destroy, dom.undefine):
            try:
                action()
            except self.libvirt.libvirtError:
                pass

    def _attach_figures(self) -> None:
        text = json.dumps(self.figures, indent=2, sort_keys=True)
        self.addDetail('figures', content.text_content(text))
        if os.environ.get('HA_GUEST_FIGURES'):
            pathlib.Path(os.environ['HA_GUEST_FIGURES']).write_text(text + '\n', encoding='utf-8')

    def _attach_reports(self) -> None:
        text = '\n'.join('%s %r' % call for call in self.controller.calls[-200:])
        self.addDetail('controller-reports', content.text_content(text))

    def reports(self, kind: str, instance: str, count: int) -> List[Dict[str, Any]]:
        """Wait for at least ``count`` reports of one kind about the instance; return them all."""
        def found() -> Optional[List[Dict[str, Any]]]:
            calls = self.controller.of(kind, instance)
            return calls if len(calls) >= count else None

        return wait_for(found, STEP_TIMEOUT_S, message='%d %s report(s) about %s' % (count, kind, instance))

    def test_agent_in_a_real_guest(self) -> None:
        channels = self.useFixture(fixtures.TempDir()).path
        manager = self.start_compute(channels)
        name, instance, started = self.boot()
        console = guest_console.GuestConsole(name, uri=base.SYSTEM_URI)
        console.open()
        self.addCleanup(console.close)
        self.addCleanup(lambda: self.addDetail('console', content.text_content(console.output())))
        # Directory discovery, pointed at the socket libvirt made (a symlink named by the instance UUID),
        # with the features a flavor enabling both heartbeat and server group messaging gives.
        with open(os.path.join(channels, instance + '.features'), 'w', encoding='utf-8') as handle:
            json.dump({'heartbeat': True, 'server_group_messaging': True}, handle)
        os.symlink(host_socket_path(name), os.path.join(channels, instance + '.sock'))

        def stats() -> Any:
            return manager.instance_stats(instance)

        console.wait_for(guest_console.AGENT_REGISTERED, BOOT_TIMEOUT_S)
        self.figures['qemu_start_to_agent_registered_s'] = round(time.monotonic() - started, 2)
        wait_for(lambda: stats() is not None and stats().state.value == 'healthy' and stats().responses >= 3,
                 STEP_TIMEOUT_S, message='the compute agent to see the guest registered and answering')
        self.figures['qemu_start_to_three_answers_s'] = round(time.monotonic() - started, 2)
        self.assertTrue(stats().connected)
        self.assertEqual(500, stats().interval_ms)

        # A failing check: a fault with the check's reason, then its recovery when the check passes.
        at = time.monotonic()
        self.assertEqual('', console.send('fail-check disk full', timeout=STEP_TIMEOUT_S))
        fault = self.reports('report_fault', instance, 1)[0]
        self.figures['fail_check_to_fault_s'] = round(time.monotonic() - at, 2)
        self.assertEqual(('unhealthy', HOST), (fault['kind'], fault['host']))
        self.assertEqual('check ctl exited 1: disk full', fault['reason'])
        console.send('pass-check', timeout=STEP_TIMEOUT_S)
        recovery = self.reports('report_recovery', instance, 1)[0]
        self.assertEqual(fault['incident_id'], recovery['incident_id'])
        wait_for(lambda: stats().state.value == 'healthy', STEP_TIMEOUT_S, message='healthy again')

        # A hung agent (SIGSTOP): missed answers, then answers again after SIGCONT.
        at = time.monotonic()
        self.assertTrue(console.send('hang', timeout=STEP_TIMEOUT_S).startswith('pid '))
        missed = self.reports('report_fault', instance, 2)[1]
        self.figures['hang_to_fault_s'] = round(time.monotonic() - at, 2)
        self.assertEqual('missed', missed['kind'])
        console.send('resume', timeout=STEP_TIMEOUT_S)
        self.assertEqual(missed['incident_id'], self.reports('report_recovery', instance, 2)[1]['incident_id'])

        # A clean exit: the agent tells the host, which reports an exit and no fault.
        out = console.send('exit-agent', timeout=STEP_TIMEOUT_S)
        self.assertTrue(out.endswith(' status 0'), out)
        exited = self.reports('report_exit', instance, 1)[0]
        self.assertEqual('agent stopping', exited['reason'])
        wait_for(lambda: stats().state.value == 'exited', STEP_TIMEOUT_S, message='the exit to be seen')

        # Started again, it registers again; the local API answers through ha-guest-client.
        mark = console.mark()
        console.send('start-agent', timeout=STEP_TIMEOUT_S)
        console.wait_for(guest_console.AGENT_REGISTERED, STEP_TIMEOUT_S, since=mark)
        answered = stats().responses
        wait_for(lambda: stats().state.value == 'healthy' and stats().responses > answered + 2, STEP_TIMEOUT_S,
                 message='answers after the restart')
        mark = console.mark()
        self.assertEqual('status 0', console.send('client status', timeout=STEP_TIMEOUT_S))
        self.assertIn('registered', '\n'.join(console.lines(since=mark)))

        # A broadcast through ha-guest-client reaches the controller (payload in base64).
        self.assertEqual('', console.send('broadcast hello from the guest', timeout=STEP_TIMEOUT_S))
        sent = self.reports('sgm_broadcast', instance, 1)[0]
        self.assertEqual(b'hello from the guest', base64.b64decode(sent['payload']))

        # Killed (SIGKILL): no exit message, so missed answers; commands needing an agent now fail.
        self.assertTrue(console.send('kill', timeout=STEP_TIMEOUT_S).endswith(' status 137'))
        self.assertEqual('missed', self.reports('report_fault', instance, 3)[2]['kind'])
        self.assertRaises(guest_console.CommandFailed, console.send, 'hang', STEP_TIMEOUT_S)
        self.assertEqual(1, len(self.controller.of('report_exit', instance)))

