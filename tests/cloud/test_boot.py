"""First scenario on the real cloud: ha_guest flavors through Nova's API, a server booting our guest image.

The whole cloud (ha_guest.testing.cloud) starts once for this class and stops at its end, also when a
test fails; logs stay in .cloud/run/logs. Figures (start-up, boot, agent registration) are printed and
written to .cloud/results.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import uuid
from typing import Any

import testtools
import testtools.content

from ha_guest.protocol.constants import CHANNEL_NAME
from ha_guest.testing import guest_image, tempest_run
from ha_guest.testing.cloud import configs
from ha_guest.testing.cloud.controller import Cloud
from ha_guest.testing.waiting import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_DIR = os.environ.get('HA_GUEST_CLOUD_RUN', os.path.join(ROOT, '.cloud', 'run'))
RESULTS = os.path.join(ROOT, '.cloud', 'results.json')
BOOT_TIMEOUT_S = 300.0
REGISTER_TIMEOUT_S = 180.0
#: The guest image's init says this on its console once the agent registered with the host.
REGISTERED = re.compile(r'ha-guest-ctl: agent registered pid \d+')
#: Our tempest plugin's tests, but Vitrage's (this cloud has no Vitrage, and CI allows no skip).
TEMPEST_REGEX = r'^ha_guest\.tempest\.(?!.*vitrage)'
TEMPEST_TIMEOUT_S = 1500.0


class TestCloudBoot(testtools.TestCase):
    """Flavor extra specs and a server with our channel, on the real services."""

    cloud: Cloud
    figures: dict[str, Any] = {}

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.figures = {}
        cls.cloud = Cloud(RUN_DIR)
        try:
            cls.cloud.start()
        except BaseException:
            cls._finish()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls._finish()
        super().tearDownClass()

    @classmethod
    def _finish(cls) -> None:
        codes = cls.cloud.stop()
        figures = cls.cloud.write_figures(RESULTS, dict(cls.figures, exit_codes=codes))
        print('cloud figures: %s' % json.dumps(figures, sort_keys=True))

    @property
    def conn(self) -> Any:
        return self.cloud.conn

    def _flavor(self, **specs: str) -> Any:
        flavor = self.conn.compute.create_flavor(name='ha-%s' % uuid.uuid4().hex[:8], ram=256, vcpus=1, disk=1)
        self.addCleanup(self.conn.compute.delete_flavor, flavor, ignore_missing=True)
        if specs:
            self._extra_specs(flavor.id, specs)
        return flavor

    def _extra_specs(self, flavor_id: str, specs: dict[str, str]) -> Any:
        # 2.86: nova-api checks extra specs against the registered validators (ours included).
        return self.conn.compute.post('/flavors/%s/os-extra_specs' % flavor_id, json={'extra_specs': specs},
                                      microversion='2.86')

    def test_flavor_extra_specs_validated_by_nova_api(self) -> None:
        flavor = self._flavor()
        good = self._extra_specs(flavor.id, {'ha_guest:heartbeat': 'true', 'ha_guest:recovery': 'reboot'})
        self.assertEqual(200, good.status_code, good.text)
        bad = self._extra_specs(flavor.id, {'ha_guest:heartbeat': 'maybe'})
        self.assertEqual(400, bad.status_code, bad.text)
        unknown = self._extra_specs(flavor.id, {'ha_guest:no_such_key': 'true'})
        self.assertEqual(400, unknown.status_code, unknown.text)
        shown = self.conn.compute.get('/flavors/%s/os-extra_specs' % flavor.id, microversion='2.86').json()
        self.assertEqual('true', shown['extra_specs']['ha_guest:heartbeat'])

    def _images(self) -> str:
        """Our guest image in Glance as devstack puts cirros UEC: kernel, ramdisk, a tiny machine image."""
        image = guest_image.build_image(output=None)
        glance = self.conn.image
        ids = {}
        for key, path, fmt in (('kernel', image.kernel, 'aki'), ('ramdisk', image.initrd, 'ari')):
            made = glance.create_image(name='ha-guest-%s' % key, filename=str(path), disk_format=fmt,
                                       container_format=fmt, wait=True, timeout=120,
                                       visibility='public')
            self.addCleanup(glance.delete_image, made, ignore_missing=True)
            ids[key] = made.id
        disk = os.path.join(RUN_DIR, 'empty.img')
        with open(disk, 'wb') as f:
            f.truncate(1024 * 1024)
        made = glance.create_image(name='ha-guest', filename=disk, disk_format='ami', container_format='ami',
                                   visibility='public', wait=True, timeout=120,
                                   meta={'kernel_id': ids['kernel'], 'ramdisk_id': ids['ramdisk'],
                                         'os_command_line': guest_image.KERNEL_CMDLINE})
        self.addCleanup(glance.delete_image, made, ignore_missing=True)
        return str(made.id)

    def _boot(self, flavor: Any, image_id: str) -> dict[str, Any]:
        """POST /servers with networks none (2.37+: no Neutron), wait for ACTIVE; return the server."""
        body = {'server': {'name': 'ha-%s' % uuid.uuid4().hex[:6], 'flavorRef': flavor.id, 'imageRef': image_id,
                           'networks': 'none'}}
        start = time.monotonic()
        resp = self.conn.compute.post('/servers', json=body, microversion='2.37')
        self.assertEqual(202, resp.status_code, resp.text)
        server_id = resp.json()['server']['id']
        self.addCleanup(self._delete_server, server_id)

        last: list[str] = ['']

        def active() -> Any:
            resp = self.conn.compute.get('/servers/%s' % server_id, microversion='2.37')
            last[0] = resp.text
            if resp.status_code != 200:
                return None
            server = resp.json()['server']
            if server['status'] == 'ERROR':
                raise AssertionError('server went to ERROR: %s' % server.get('fault'))
            return server if server['status'] == 'ACTIVE' else None

        server = wait_for(active, BOOT_TIMEOUT_S, interval=0.5,
                          message=lambda: 'the server to be ACTIVE (last answer: %s)' % last[0][:2000])
        self.figures['boot_to_active_s'] = round(time.monotonic() - start, 2)
        self.figures['boot_started'] = start
        return dict(server)

    def _delete_server(self, server_id: str) -> None:
        self.conn.compute.delete(('/servers/%s' % server_id))
        wait_for(lambda: self.conn.compute.get('/servers/%s' % server_id).status_code == 404, 120, interval=1,
                 message='the server to be deleted')

    def test_server_boots_with_our_channel_and_agent_registers(self) -> None:
        flavor = self._flavor(**{'ha_guest:heartbeat': 'true'})
        server = self._boot(flavor, self._images())
        started = self.figures.pop('boot_started')
        name = server['OS-EXT-SRV-ATTR:instance_name']
        xml = subprocess.run(['virsh', '-c', 'qemu:///system', 'dumpxml', name], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        self.assertIn("name='%s'" % CHANNEL_NAME, xml)
        self.assertIn('<kernel>', xml)

        # The guest's agent registers with ha-guest-compute over that channel; the image's init says so
        # on the serial console, which Nova logs to the instance's console.log.
        console = os.path.join(RUN_DIR, 'instances', server['id'], 'console.log')

        def registered() -> bool:
            try:
                with open(console, encoding='utf-8', errors='replace') as f:
                    return bool(REGISTERED.search(f.read()))
            except OSError:
                return False

        wait_for(registered, REGISTER_TIMEOUT_S, interval=0.5,
                 message='the agent to register (console %s)' % console)
        self.figures['boot_to_agent_registered_s'] = round(time.monotonic() - started, 2)
        compute_log = os.path.join(RUN_DIR, 'logs', 'ha-guest-compute.log')
        with open(compute_log, encoding='utf-8') as f:
            self.assertIn('%s: channel found' % server['id'], f.read())

    def test_masakari_segment_with_the_compute_host(self) -> None:
        # What the masakari sink needs: the compute host, under Nova's name for it, in a failover segment.
        ha = self.conn.instance_ha
        segment = ha.create_segment(name='ha-guest-%s' % uuid.uuid4().hex[:6], recovery_method='auto',
                                    service_type='COMPUTE')
        self.addCleanup(ha.delete_segment, segment, ignore_missing=True)
        host = ha.create_host(segment.uuid, name=self.cloud.layout.host, type='COMPUTE',
                              control_attributes='SSH')
        self.addCleanup(ha.delete_host, host.uuid, segment.uuid, ignore_missing=True)
        self.assertEqual([self.cloud.layout.host], [h.name for h in ha.hosts(segment.uuid)])

    def test_tempest_plugin(self) -> None:
        # The tests a devstack gate job would run, with tempest 47, against these real services:
        # the extra-spec API tests and the scenarios (registration, a hung agent rebooted by our
        # service user and registering again, a clean exit raising nothing). The guest is driven
        # through its serial console (serial_pty: tempest runs as root on this compute host).
        cloud = tempest_run.Cloud(auth_url=self.cloud.layout.url('keystone'), password=configs.PASSWORD,
                                  image_ref=self._images(), guest_control='serial_pty')
        log = os.path.join(RUN_DIR, 'tempest', 'logs', 'tempest.log')
        with contextlib.suppress(FileNotFoundError):
            os.remove(log)  # tempest appends: figures of this run only
        result = tempest_run.run(cloud, os.path.join(RUN_DIR, 'tempest'), regex=TEMPEST_REGEX,
                                 timeout=TEMPEST_TIMEOUT_S)
        self.figures['tempest_s'] = round(result.seconds, 1)
        self.figures['tempest_scenarios'] = _scenario_figures(log)
        # Tempest's own output only as a detail (shown on failure): printed, its totals would be
        # counted again by .ci/run's sum of stestr totals.
        self.addDetail('tempest-output', testtools.content.text_content(result.output[-20000:]))
        self.assertEqual(0, result.returncode, 'tempest run failed; see the tempest-output detail')
        self.assertEqual((6, 0, 0), (result.passed, result.failed, result.skipped))


def _scenario_figures(log_path: str) -> dict[str, str]:
    """The figures each scenario logged ("<test id> figures: boot to ACTIVE 2.5 s, ..."), by test name."""
    found = {}
    with contextlib.suppress(FileNotFoundError), open(log_path) as log:
        for line in log:
            match = re.search(r'\.(test_\w+)(?:\[[^\]]*\])? figures: (.*)$', line)
            if match:
                found[match.group(1)] = match.group(2).strip()
    return found
