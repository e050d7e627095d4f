"""Fill the cloud's databases, its RabbitMQ vhost and the Keystone catalog (every step bounded in time)."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from ha_guest.testing.cloud import configs
from ha_guest.testing.cloud.configs import Layout
from ha_guest.testing.cloud.processes import CloudError, run

MYSQL_SOCKET = '/run/mysqld/mysqld.sock'


def sql(statements: str, timeout: float = 60.0) -> None:
    """Run SQL as MariaDB's root over its socket (root authenticates by unix_socket on Debian)."""
    try:
        result = subprocess.run(['mariadb', '--protocol=socket', '-S', MYSQL_SOCKET, '-uroot'],
                                input=statements.encode(), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CloudError('MariaDB did not answer within %.0fs' % timeout) from None
    if result.returncode != 0:
        raise CloudError('MariaDB refused: %s' % result.stderr.decode(errors='replace'))


def databases(fresh: bool = True) -> None:
    """Create (dropping first when ``fresh``) the cloud's databases and its user."""
    statements = []
    for name in configs.DATABASES:
        db = configs.DB_PREFIX + name
        if fresh:
            statements.append('DROP DATABASE IF EXISTS %s;' % db)
        statements.append('CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8;' % db)
    for host in ('localhost', '127.0.0.1'):
        statements.append("CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s';"
                          % (configs.DB_USER, host, configs.PASSWORD))
        statements.append("GRANT ALL PRIVILEGES ON `%s%%`.* TO '%s'@'%s';"
                          % (configs.DB_PREFIX, configs.DB_USER, host))
    sql('\n'.join(statements))


def leftover_domains(uri: str = 'qemu:///system') -> list[str]:
    """Destroy and undefine Nova's domains (instance-*) an earlier run left on libvirtd.

    A fresh database with such a domain on the hypervisor makes nova-compute refuse to start ("My hypervisor
    has existing instances, but I appear to be a new service in this database").
    """
    def virsh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(['virsh', '-c', uri, *args], capture_output=True, text=True, timeout=60,
                              check=False)

    names = [n for n in virsh('list', '--all', '--name').stdout.split() if n.startswith('instance-')]
    for name in names:
        virsh('destroy', name)
        virsh('undefine', name)
    return names


def vhost(fresh: bool = True) -> None:
    """The cloud's own RabbitMQ vhost (recreated when ``fresh``: no queue of an earlier run survives)."""
    def ctl(*args: str) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(['rabbitmqctl', *args], capture_output=True, timeout=60, check=False)
        except subprocess.TimeoutExpired:
            raise CloudError('rabbitmqctl %s did not end within 60s' % args[0]) from None

    if fresh:
        ctl('delete_vhost', configs.VHOST)
    result = ctl('add_vhost', configs.VHOST)
    if result.returncode != 0 and b'already exists' not in result.stdout + result.stderr:
        raise CloudError('rabbitmqctl add_vhost failed: %s' % result.stderr.decode(errors='replace'))
    result = ctl('set_permissions', '-p', configs.VHOST, 'guest', '.*', '.*', '.*')
    if result.returncode != 0:
        raise CloudError('rabbitmqctl set_permissions failed: %s' % result.stderr.decode(errors='replace'))


def db_syncs(layout: Layout, conf: dict[str, str], env: dict[str, str]) -> dict[str, float]:
    """Every service's schema, Keystone's keys and admin, Nova's cells; return seconds per step."""
    import time

    log = os.path.join(layout.logs, 'db-sync.log')
    steps: list[tuple[str, list[str]]] = [
        ('keystone', [layout.bin('keystone-manage'), '--config-file', conf['keystone'], 'db_sync']),
        ('keystone-keys', [layout.bin('keystone-manage'), '--config-file', conf['keystone'], 'fernet_setup',
                           '--keystone-user', 'root', '--keystone-group', 'root']),
        ('keystone-credential', [layout.bin('keystone-manage'), '--config-file', conf['keystone'],
                                 'credential_setup', '--keystone-user', 'root', '--keystone-group', 'root']),
        ('keystone-bootstrap', [layout.bin('keystone-manage'), '--config-file', conf['keystone'], 'bootstrap',
                                '--bootstrap-password', configs.PASSWORD,
                                '--bootstrap-admin-url', layout.url('keystone'),
                                '--bootstrap-public-url', layout.url('keystone'),
                                '--bootstrap-internal-url', layout.url('keystone'),
                                '--bootstrap-region-id', configs.REGION]),
        ('placement', [layout.bin('placement-manage'), '--config-file', conf['placement'], 'db', 'sync']),
        ('glance', [layout.bin('glance-manage'), '--config-file', conf['glance-api'], 'db_sync']),
        ('nova-api', [layout.bin('nova-manage'), '--config-file', conf['nova'], 'api_db', 'sync']),
        ('nova-cell0', [layout.bin('nova-manage'), '--config-file', conf['nova'], 'cell_v2', 'map_cell0',
                        '--database_connection', layout.db('nova_cell0')]),
        ('nova-cell1', [layout.bin('nova-manage'), '--config-file', conf['nova'], 'cell_v2', 'create_cell',
                        '--name', 'cell1']),
        ('nova', [layout.bin('nova-manage'), '--config-file', conf['nova'], 'db', 'sync']),
        ('masakari', [layout.bin('masakari-manage'), '--config-file', conf['masakari'], 'db', 'sync']),
    ]
    took: dict[str, float] = {}
    for name, argv in steps:
        start = time.monotonic()
        run(argv, log, timeout=300, env=env)
        took[name] = round(time.monotonic() - start, 2)
    return took


def catalog(layout: Layout) -> Any:
    """Service project, users (admin role), services and endpoints; return an admin openstacksdk connection."""
    conn = admin(layout)
    project = conn.identity.create_project(name='service', domain_id='default')
    admin_role = conn.identity.find_role('admin')
    # Nova sends the user's token along with its own to Placement, Glance: service role needed there.
    service_role = conn.identity.find_role('service') or conn.identity.create_role(name='service')
    for name in configs.SERVICE_USERS:
        user = conn.identity.create_user(name=name, password=configs.PASSWORD, domain_id='default',
                                         default_project_id=project.id)
        conn.identity.assign_project_role_to_user(project, user, admin_role)
        conn.identity.assign_project_role_to_user(project, user, service_role)
    for name, kind in (('placement', 'placement'), ('glance', 'image'), ('nova', 'compute'),
                       ('masakari', 'instance-ha'), ('neutron', 'network')):
        service = conn.identity.create_service(name=name, type=kind)
        for interface in ('public', 'internal', 'admin'):
            conn.identity.create_endpoint(service_id=service.id, interface=interface, url=layout.url(name),
                                          region_id=configs.REGION)
    conn.close()
    # A new connection: the first one's token carries the catalog as it was (identity only).
    return admin(layout)


def admin(layout: Layout) -> Any:
    """An openstacksdk connection as the cloud's admin."""
    import openstack

    return openstack.connect(auth_url=layout.url('keystone'), username='admin', password=configs.PASSWORD,
                             project_name='admin', user_domain_name='Default', project_domain_name='Default',
                             region_name=configs.REGION, identity_api_version='3', timeout=30)
