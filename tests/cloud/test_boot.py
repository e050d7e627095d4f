"""First scenarios on the real cloud: ha_guest flavors through Nova's API, a server booting our guest image.

The cloud (ha_guest.testing.cloud) is shared by every tests/cloud module (tests/cloud/base.py); logs stay
in .cloud/run/logs. Figures (start-up, boot, agent registration) are written to .cloud/results.json.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
import uuid

import testtools.content

from ha_guest.protocol.constants import CHANNEL_NAME
from ha_guest.testing import tempest_run
from ha_guest.testing.cloud import configs
from tests.cloud import base

RUN_DIR = base.RUN_DIR
#: Our tempest plugin's tests, but Vitrage's (this cloud has no Vitrage, and CI allows no skip).
TEMPEST_REGEX = r'^ha_guest\.tempest\.(?!.*vitrage)'
TEMPEST_TIMEOUT_S = 1500.0


class TestCloudBoot(base.CloudTestCase):
    """Flavor extra specs and a server with our channel, on the real services."""

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

    def test_server_boots_with_our_channel_and_agent_registers(self) -> None:
        flavor = self._flavor(**{'ha_guest:heartbeat': 'true'})
        server = self._boot(flavor, self._images())
        started = server['_boot_started']
        self.figures['boot_to_active_s'] = server['_boot_to_active_s']
        name = server['OS-EXT-SRV-ATTR:instance_name']
        xml = subprocess.run(['virsh', '-c', 'qemu:///system', 'dumpxml', name], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        self.assertIn("name='%s'" % CHANNEL_NAME, xml)
        self.assertIn('<kernel>', xml)

        # The guest's agent registers with ha-guest-compute over that channel; the image's init says so
        # on the serial console, which Nova logs to the instance's console.log.
        self._wait_registered(server['id'])
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
