"""Bring the whole cloud up in order, each step bounded, and take it down again (also after a failure)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any, Optional

from ha_guest.testing.cloud import bootstrap, configs
from ha_guest.testing.cloud.configs import Layout
from ha_guest.testing.cloud.processes import CloudError, Service, http_ready, log_ready, run
from ha_guest.testing.waiting import wait_for

#: Seconds one service may take to become ready (TCG, two shared cores: generous, still bounded).
READY_S = float(os.environ.get('HA_GUEST_CLOUD_READY_S', '180'))

#: API services under uwsgi: name -> (WSGI module, environment that points it at its configuration).
WSGI = {
    'keystone': 'keystone.wsgi.api:application',
    'placement': 'placement.wsgi.api:application',
    'glance': 'glance.wsgi.api:application',
    'nova': 'nova.wsgi.osapi_compute:application',
    'masakari': 'masakari.wsgi.api:application',
}


class Cloud:
    """The cloud of one test run: ``start()``, use ``conn`` (admin, openstacksdk), ``stop()``."""

    def __init__(self, run_dir: str, port_base: int = 25000) -> None:
        self.layout = Layout(run=os.path.abspath(run_dir), port_base=port_base)
        self.services: dict[str, Service] = {}
        self.figures: dict[str, Any] = {'service_ready_s': {}, 'db_sync_s': {}}
        self.conf: dict[str, str] = {}
        self.conn: Any = None

    # Environment and commands ---------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The services' environment: ours, with each WSGI app pointed at its files, no eventlet in Nova."""
        env = dict(os.environ)
        etc = self.layout.etc
        env.update({
            'OS_KEYSTONE_CONFIG_FILES': os.path.join(etc, 'keystone', 'keystone.conf'),
            'OS_PLACEMENT_CONFIG_DIR': os.path.join(etc, 'placement'),
            'OS_GLANCE_CONFIG_DIR': os.path.join(etc, 'glance'),
            'OS_NOVA_CONFIG_DIR': os.path.join(etc, 'nova'),
            'OS_MASAKARI_CONFIG_DIR': os.path.join(etc, 'masakari'),
            # Nova 34 in native threading mode, as it runs our driver in production.
            'OS_NOVA_DISABLE_EVENTLET_PATCHING': '1',
            'PATH': os.path.dirname(self.layout.bin('python')) + os.pathsep + env.get('PATH', ''),
        })
        for name in ('OS_STDOUT_CAPTURE', 'OS_STDERR_CAPTURE', 'OS_LOG_CAPTURE', 'OS_TEST_TIMEOUT'):
            env.pop(name, None)
        return env

    def _wsgi(self, name: str) -> Service:
        argv = [self.layout.bin('uwsgi'), '--http-socket', '127.0.0.1:%d' % self.layout.port(name),
                '--module', WSGI[name], '--master', '--processes', '1', '--threads', '4', '--enable-threads',
                '--die-on-term', '--need-app', '--lazy-apps', '--buffer-size', '65535', '--thunder-lock',
                '--procname-prefix', 'hacloud-', '--hook-master-start', 'unix_signal:15 gracefully_kill_them_all',
                '--worker-reload-mercy', '5',
                # uwsgi's plain http-socket closes the connection after each answer without saying so;
                # keystoneauth's sessions then reuse a dead connection and a POST fails with
                # "Connection reset by peer". Saying it makes the clients open a new one.
                '--add-header', 'Connection: close']
        if name == 'masakari':
            # Masakari 22's initialize_application parses its configuration a second time from sys.argv
            # alone, dropping the files found in OS_MASAKARI_CONFIG_DIR: name the file in the app's argv.
            argv += ['--pyargv', '--config-file %s' % os.path.join(self.layout.etc, 'masakari', 'masakari.conf')]
        return Service(name, argv, os.path.join(self.layout.logs, '%s.log' % name), self.env())

    def _daemon(self, name: str, script: str, conf: str) -> Service:
        argv = [self.layout.bin(script), '--config-file', conf]
        return Service(name, argv, os.path.join(self.layout.logs, '%s.log' % name), self.env())

    def _start(self, service: Service, ready: Callable[[], bool]) -> None:
        self.services[service.name] = service
        service.start()
        took = service.wait_ready(ready, READY_S)
        self.figures['service_ready_s'][service.name] = round(took, 2)

    def _start_many(self, pairs: list[tuple[Service, Callable[[], bool]]]) -> None:
        """Start several services at once and wait for each (they boot in parallel)."""
        for service, _ in pairs:
            self.services[service.name] = service
            service.start()
        for service, ready in pairs:
            self.figures['service_ready_s'][service.name] = round(service.wait_ready(ready, READY_S), 2)

    # Start and stop ---------------------------------------------------------------------------

    def start(self) -> None:
        """Databases, vhost, configuration, every service in order; raises CloudError (services left to stop())."""
        begin = time.monotonic()
        layout = self.layout
        if os.path.isdir(layout.run):
            shutil.rmtree(layout.run)
        os.makedirs(layout.logs)
        bootstrap.leftover_domains()
        bootstrap.databases(fresh=True)
        bootstrap.vhost(fresh=True)
        self.conf = configs.write_all(layout)
        t = time.monotonic()
        self.figures['db_sync_s'] = bootstrap.db_syncs(layout, self.conf, self.env())
        self.figures['db_sync_total_s'] = round(time.monotonic() - t, 2)

        self._start(self._wsgi('keystone'), http_ready(layout.url('keystone')))
        self._start(Service('neutron-stub', [self.layout.bin('python'), '-m', 'ha_guest.testing.cloud.neutron_stub',
                                             str(layout.port('neutron'))],
                            os.path.join(layout.logs, 'neutron-stub.log'), self.env()),
                    http_ready(layout.url('neutron')))
        self.conn = bootstrap.catalog(layout)
        self._start_many([(self._wsgi(name), http_ready('http://127.0.0.1:%d/' % layout.port(name)))
                          for name in ('placement', 'glance', 'nova', 'masakari')])

        nova, cpu = self.conf['nova'], self.conf['nova-cpu']
        self._start_many([(self._daemon('nova-conductor', 'nova-conductor', nova), self._nova_up('nova-conductor')),
                          (self._daemon('nova-scheduler', 'nova-scheduler', nova), self._nova_up('nova-scheduler'))])
        self._start(self._daemon('nova-compute', 'nova-compute', cpu), self._nova_up('nova-compute'))
        self._discover_hosts()
        self._start_many([
            (self._daemon('masakari-engine', 'masakari-engine', self.conf['masakari']),
             log_ready(os.path.join(layout.logs, 'masakari-engine.log'), 'Starting ha_engine')),
            (self._daemon('ha-guest-controller', 'ha-guest-controller', self.conf['controller']),
             log_ready(os.path.join(layout.logs, 'ha-guest-controller.log'), 'listening on topic')),
            (self._daemon('ha-guest-compute', 'ha-guest-compute', self.conf['compute']),
             log_ready(os.path.join(layout.logs, 'ha-guest-compute.log'), 'compute agent started')),
        ])
        self.figures['cloud_start_s'] = round(time.monotonic() - begin, 2)

    def _nova_up(self, binary: str) -> Callable[[], bool]:
        """Ready when nova-api lists the service up (it reported over RPC/DB)."""
        def ready() -> bool:
            return any(s.binary == binary and s.state == 'up' for s in self.conn.compute.services())
        return ready

    def _discover_hosts(self) -> None:
        """Map the compute host into cell1, then wait for its resource provider in Placement."""
        t = time.monotonic()
        run([self.layout.bin('nova-manage'), '--config-file', self.conf['nova'], 'cell_v2', 'discover_hosts',
             '--verbose'], os.path.join(self.layout.logs, 'db-sync.log'), timeout=120, env=self.env())
        wait_for(lambda: any(p.name == self.layout.host for p in self.conn.placement.resource_providers()),
                 READY_S, interval=0.5, message='the compute host in Placement', error=CloudError)
        wait_for(lambda: list(self.conn.compute.hypervisors()), READY_S, interval=0.5,
                 message='a hypervisor in nova-api', error=CloudError)
        self.figures['discover_hosts_s'] = round(time.monotonic() - t, 2)

    def stop(self) -> dict[str, Optional[int]]:
        """Stop every service, newest first; return their exit codes (logs stay in the run dir)."""
        codes: dict[str, Optional[int]] = {}
        # All told at once, then waited for one by one: the slow ones (nova-compute takes its full 15 s)
        # wind down side by side instead of in turn.
        for name in reversed(list(self.services)):
            self.services[name].terminate()
        for name in reversed(list(self.services)):
            service = self.services[name]
            service.stop()
            codes[name] = service.proc.returncode if service.proc else None
        if self.conn is not None:
            self.conn.close()
        return codes

    def write_figures(self, path: str, extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Merge ``extra`` into the figures and write them as JSON."""
        figures = dict(self.figures, **(extra or {}))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(figures, f, indent=2, sort_keys=True)
        return figures
