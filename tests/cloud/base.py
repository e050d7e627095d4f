"""What every tests/cloud module shares: one cloud for the whole run, and the helpers that drive it.

The cloud (ha_guest.testing.cloud) starts when the first test class needs it and stops once: at the end
of the package's suite (tests/cloud/__init__.py's load_tests wraps it) or, when a module is run on its
own without that suite, at interpreter exit. A start that failed is not tried again: every later class
gets the same error at once. Figures of all modules go to one dict, written to .cloud/results.json.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Optional

import testtools
import testtools.content

from ha_guest.testing import guest_image
from ha_guest.testing.cloud.controller import Cloud
from ha_guest.testing.guest_console import GuestConsole
from ha_guest.testing.waiting import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_DIR = os.environ.get('HA_GUEST_CLOUD_RUN', os.path.join(ROOT, '.cloud', 'run'))
RESULTS = os.path.join(ROOT, '.cloud', 'results.json')
BOOT_TIMEOUT_S = 300.0
REGISTER_TIMEOUT_S = 180.0
#: Bounded waits for Nova's state changes and our recovery actions (2 busy cores: generous).
STATE_TIMEOUT_S = 180.0
#: The guest image's init says this on its console once the agent registered with the host.
REGISTERED = re.compile(r'ha-guest-ctl: agent registered pid \d+')
#: Nova's instance actions that a recovery of ours makes (sinks/recovery.py NOVA_ACTIONS).
RECOVERY_ACTIONS = frozenset({'reboot', 'stop'})


class SharedCloud:
    """The one cloud of a test run: started on first use, stopped once, its figures kept."""

    def __init__(self) -> None:
        self.cloud: Optional[Cloud] = None
        self.error: Optional[BaseException] = None
        self.figures: dict[str, Any] = {}
        self.image_id: Optional[str] = None
        self._lock = threading.Lock()
        self._atexit = False

    def get(self) -> Cloud:
        """Return the running cloud, starting it the first time; re-raise a failed start."""
        with self._lock:
            if self.error is not None:
                raise RuntimeError('the cloud did not start earlier in this run: %s' % self.error)
            if self.cloud is None:
                cloud = Cloud(RUN_DIR)
                self.cloud = cloud
                if not self._atexit:
                    atexit.register(self.stop)
                    self._atexit = True
                try:
                    cloud.start()
                except BaseException as exc:
                    self.error = exc
                    self.stop()
                    raise
            return self.cloud

    def stop(self) -> None:
        """Stop the cloud if it runs (idempotent) and write the figures."""
        cloud, self.cloud = self.cloud, None
        if cloud is None:
            return
        codes = cloud.stop()
        figures = cloud.write_figures(RESULTS, dict(self.figures, exit_codes=codes))
        print('cloud figures: %s' % json.dumps(figures, sort_keys=True))


SHARED = SharedCloud()


class CloudTestCase(testtools.TestCase):
    """Helpers for scenarios on the shared cloud: flavors, images, servers, consoles, faults, actions."""

    cloud: Cloud
    figures: dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.cloud = SHARED.get()
        cls.figures = SHARED.figures

    @property
    def conn(self) -> Any:
        return self.cloud.conn

    def _flavor(self, **specs: str) -> Any:
        flavor = self.conn.compute.create_flavor(name='ha-%s' % uuid.uuid4().hex[:8], ram=256, vcpus=1, disk=1)
        self.addCleanup(self.conn.compute.delete_flavor, flavor, ignore_missing=True)
        if specs:
            resp = self._extra_specs(flavor.id, specs)
            self.assertEqual(200, resp.status_code, resp.text)
        return flavor

    def _extra_specs(self, flavor_id: str, specs: dict[str, str]) -> Any:
        # 2.86: nova-api checks extra specs against the registered validators (ours included).
        return self.conn.compute.post('/flavors/%s/os-extra_specs' % flavor_id, json={'extra_specs': specs},
                                      microversion='2.86')

    def _images(self) -> str:
        """Our guest image in Glance as devstack puts cirros UEC (kernel, ramdisk, tiny disk); once a run."""
        if SHARED.image_id is not None:
            return SHARED.image_id
        image = guest_image.build_image(output=None)
        glance = self.conn.image
        ids = {}
        for key, path, fmt in (('kernel', image.kernel, 'aki'), ('ramdisk', image.initrd, 'ari')):
            made = glance.create_image(name='ha-guest-%s' % key, filename=str(path), disk_format=fmt,
                                       container_format=fmt, wait=True, timeout=120, visibility='public')
            ids[key] = made.id
        disk = os.path.join(RUN_DIR, 'empty.img')
        with open(disk, 'wb') as f:
            f.truncate(1024 * 1024)
        # os_shutdown_timeout: the image's init ignores ACPI, so Nova's clean shutdown (stop, soft
        # reboot's first try) would wait the full 60 s default before it powers the domain off.
        made = glance.create_image(name='ha-guest', filename=disk, disk_format='ami', container_format='ami',
                                   visibility='public', wait=True, timeout=120,
                                   meta={'kernel_id': ids['kernel'], 'ramdisk_id': ids['ramdisk'],
                                         'os_command_line': guest_image.KERNEL_CMDLINE,
                                         'os_shutdown_timeout': '5'})
        # Kept for the whole run (the databases are made afresh by the next one): later tests reuse it.
        SHARED.image_id = str(made.id)
        return SHARED.image_id

    def _boot(self, flavor: Any, image_id: str, group: Optional[str] = None) -> dict[str, Any]:
        """POST /servers with networks none (2.37+: no Neutron), wait for ACTIVE; return the server."""
        body: dict[str, Any] = {'server': {'name': 'ha-%s' % uuid.uuid4().hex[:6], 'flavorRef': flavor.id,
                                           'imageRef': image_id, 'networks': 'none'}}
        if group:
            body['os:scheduler_hints'] = {'group': group}
        start = time.monotonic()
        resp = self.conn.compute.post('/servers', json=body, microversion='2.37')
        self.assertEqual(202, resp.status_code, resp.text)
        server_id = resp.json()['server']['id']
        self.addCleanup(self._delete_server, server_id)
        server = self._wait_status(server_id, 'ACTIVE', BOOT_TIMEOUT_S)
        server['_boot_started'] = start
        server['_boot_to_active_s'] = round(time.monotonic() - start, 2)
        return server

    def _server(self, server_id: str) -> dict[str, Any]:
        resp = self.conn.compute.get('/servers/%s' % server_id, microversion='2.37')
        self.assertEqual(200, resp.status_code, resp.text)
        return dict(resp.json()['server'])

    def _wait_status(self, server_id: str, status: str, timeout: float = STATE_TIMEOUT_S) -> dict[str, Any]:
        """Wait until the server has ``status`` and no task state; fail at once on ERROR."""
        last: list[str] = ['']

        def reached() -> Optional[dict[str, Any]]:
            resp = self.conn.compute.get('/servers/%s' % server_id, microversion='2.37')
            last[0] = resp.text
            if resp.status_code != 200:
                return None
            server = resp.json()['server']
            if server['status'] == 'ERROR':
                raise AssertionError('server went to ERROR: %s' % server.get('fault'))
            done = server['status'] == status and not server.get('OS-EXT-STS:task_state')
            return dict(server) if done else None

        return wait_for(reached, timeout, interval=0.3,
                        message=lambda: 'server %s to be %s (last answer: %s)' % (server_id, status, last[0][:2000]))

    def _action(self, server_id: str, body: dict[str, Any]) -> None:
        resp = self.conn.compute.post('/servers/%s/action' % server_id, json=body)
        self.assertEqual(202, resp.status_code, '%s: %s' % (body, resp.text))

    def _delete_server(self, server_id: str) -> None:
        self.conn.compute.delete('/servers/%s' % server_id)
        wait_for(lambda: self.conn.compute.get('/servers/%s' % server_id).status_code == 404, 120, interval=1,
                 message='the server to be deleted')

    def _console_log(self, server_id: str) -> str:
        """What Nova logged of the server's serial console (started afresh when the domain starts)."""
        try:
            with open(os.path.join(RUN_DIR, 'instances', server_id, 'console.log'), encoding='utf-8',
                      errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def _wait_registered(self, server_id: str, after: str = '', timeout: float = REGISTER_TIMEOUT_S) -> str:
        """Wait for a registration line in the console log newer than ``after`` (an earlier log)."""
        before = len(REGISTERED.findall(after))

        def registered() -> Optional[str]:
            text = self._console_log(server_id)
            # The log either grew (the old text is its prefix) or was started afresh by a domain start.
            fresh = not text.startswith(after)
            return text if len(REGISTERED.findall(text)) > (0 if fresh else before) else None

        try:
            return wait_for(registered, timeout, interval=0.3,
                            message='the agent of %s to register' % server_id)
        except AssertionError:
            self.addDetail('console-log', testtools.content.text_content(self._console_log(server_id)[-8000:]))
            raise

    @contextlib.contextmanager
    def _console(self, server: dict[str, Any]) -> Iterator[GuestConsole]:
        """The serial console (pty) of the server's domain, for the image's commands."""
        console = GuestConsole(server['OS-EXT-SRV-ATTR:instance_name'])
        with console:
            try:
                yield console
            finally:
                self.addDetail('console-%s' % server['id'][:8],
                               testtools.content.text_content('\n'.join(console.lines()[-300:])))

    def _instance_actions(self, server_id: str) -> list[dict[str, Any]]:
        resp = self.conn.compute.get('/servers/%s/os-instance-actions' % server_id)
        self.assertEqual(200, resp.status_code, resp.text)
        return list(resp.json()['instanceActions'])

    def _service_user_id(self) -> str:
        """The Keystone id of the ha_guest service user, who makes our recovery actions."""
        return str(self.conn.identity.find_user('ha_guest', ignore_missing=False).id)

    def _our_actions(self, server_id: str) -> list[dict[str, Any]]:
        """The server's instance actions made by the ha_guest service user."""
        user = self._service_user_id()
        return [a for a in self._instance_actions(server_id) if a.get('user_id') == user]

    def _status(self, *args: str) -> Any:
        """Run ``ha-guest-status <args> -f json`` with the controller's config file; return its JSON."""
        cmd = [os.path.join(os.path.dirname(sys.executable), 'ha-guest-status'), '--config-file',
               os.path.join(RUN_DIR, 'etc', 'ha_guest', 'controller.conf'), *args, '-f', 'json']
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        self.assertEqual(0, done.returncode, 'ha-guest-status %s: %s%s' % (args, done.stdout, done.stderr))
        return json.loads(done.stdout)

    def _faults(self, server_id: str) -> list[dict[str, Any]]:
        """Every fault the controller knows of for the server, open and recently cleared."""
        return list(self._status('fault', 'list', '--all', '--instance', server_id))

    def _instance_state(self, server_id: str) -> Optional[str]:
        """The heartbeat state ha-guest-compute has for the server (healthy, failed, ...), or None."""
        for row in self._status('instance', 'list', '--host', self.cloud.layout.host):
            if row['Instance'] == server_id:
                return str(row['State'])
        return None

    def _wait_healthy(self, server_id: str, timeout: float = REGISTER_TIMEOUT_S) -> None:
        wait_for(lambda: self._instance_state(server_id) == 'healthy', timeout, interval=1.0,
                 message='ha-guest-compute to see %s healthy' % server_id)
