"""Configuration files of the cloud's services, written into the run dir (<run>/etc/<service>/)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sys

from ha_guest.testing.cloud import settings
from ha_guest.testing.cloud.settings import Sections

PASSWORD = 'hacloud-secret'
REGION = 'RegionOne'
#: Databases of our own (never a service's default name, so nothing else on the host is touched).
DATABASES = ('keystone', 'placement', 'glance', 'nova_api', 'nova_cell0', 'nova', 'masakari')
DB_PREFIX = 'hacloud_'
DB_USER = 'hacloud'
VHOST = 'hacloud'
#: The users the services and the tests use: name -> project (every one has the admin role).
SERVICE_USERS = ('nova', 'placement', 'glance', 'masakari', 'ha_guest')


@dataclasses.dataclass
class Layout:
    """Where everything of one cloud lives, and its addresses."""

    run: str
    port_base: int = 25000
    host: str = dataclasses.field(default_factory=socket.gethostname)
    venv: str = dataclasses.field(default_factory=lambda: sys.prefix)
    rabbit: str = '127.0.0.1:5672'

    def path(self, *parts: str) -> str:
        """A path under the run dir."""
        return os.path.join(self.run, *parts)

    @property
    def etc(self) -> str:
        """Folder of the configuration files."""
        return self.path('etc')

    @property
    def logs(self) -> str:
        """Folder of the services' logs."""
        return self.path('logs')

    def port(self, service: str) -> int:
        """The HTTP port of an API service."""
        return self.port_base + ('keystone', 'placement', 'glance', 'nova', 'masakari', 'neutron').index(service)

    def url(self, service: str) -> str:
        """The endpoint URL of an API service, as in the Keystone catalog."""
        suffix = {'keystone': '/v3', 'nova': '/v2.1', 'masakari': '/v1'}.get(service, '')
        return 'http://127.0.0.1:%d%s' % (self.port(service), suffix)

    def db(self, name: str) -> str:
        """SQLAlchemy URL of one of the cloud's databases."""
        return 'mysql+pymysql://%s:%s@127.0.0.1/%s%s?charset=utf8' % (DB_USER, PASSWORD, DB_PREFIX, name)

    @property
    def transport_url(self) -> str:
        """The RabbitMQ vhost of the cloud."""
        return 'rabbit://guest:guest@%s/%s' % (self.rabbit, VHOST)

    def bin(self, name: str) -> str:
        """A console script of the venv."""
        return os.path.join(self.venv, 'bin', name)


def auth(layout: Layout, user: str) -> dict[str, str]:
    """keystoneauth password options of one service user (project 'service')."""
    return {'auth_type': 'password', 'auth_url': layout.url('keystone'), 'username': user,
            'password': PASSWORD, 'project_name': 'service', 'user_domain_name': 'Default',
            'project_domain_name': 'Default', 'region_name': REGION}


def authtoken(layout: Layout, user: str) -> dict[str, str]:
    """keystonemiddleware's [keystone_authtoken] for an API service."""
    options = auth(layout, user)
    options.update({'www_authenticate_uri': layout.url('keystone'), 'memcached_servers': '',
                    'service_token_roles_required': 'true'})
    return options


def _common(layout: Layout, lock: str) -> Sections:
    return {'DEFAULT': {'debug': 'false', 'use_stderr': 'true', 'transport_url': layout.transport_url},
            'oslo_concurrency': {'lock_path': layout.path('lock', lock)}}


def keystone(layout: Layout) -> Sections:
    """keystone.conf."""
    keys = layout.path('keystone')
    return settings.merged(_common(layout, 'keystone'), {
        'database': {'connection': layout.db('keystone')},
        'token': {'provider': 'fernet'},
        'fernet_tokens': {'key_repository': os.path.join(keys, 'fernet-keys')},
        'fernet_receipts': {'key_repository': os.path.join(keys, 'fernet-keys')},
        'credential': {'key_repository': os.path.join(keys, 'credential-keys')},
    })


def placement(layout: Layout) -> Sections:
    """placement.conf."""
    return settings.merged(_common(layout, 'placement'), {
        'placement_database': {'connection': layout.db('placement')},
        'api': {'auth_strategy': 'keystone'},
        'keystone_authtoken': authtoken(layout, 'placement'),
    })


def glance(layout: Layout) -> Sections:
    """glance-api.conf: a file store in the run dir."""
    return settings.merged(_common(layout, 'glance'), {
        'DEFAULT': {'enabled_backends': 'fs:file'},
        'glance_store': {'default_backend': 'fs'},
        'fs': {'filesystem_store_datadir': layout.path('glance', 'images')},
        'os_glance_staging_store': {'filesystem_store_datadir': layout.path('glance', 'staging')},
        'os_glance_tasks_store': {'filesystem_store_datadir': layout.path('glance', 'tasks')},
        'database': {'connection': layout.db('glance')},
        'keystone_authtoken': authtoken(layout, 'glance'),
        'paste_deploy': {'flavor': 'keystone'},
    })


def nova(layout: Layout, compute: bool) -> Sections:
    """nova.conf (api, conductor, scheduler; one conductor for the whole cloud) or nova-cpu.conf."""
    fragments = [settings.fragment(settings.NOVA_NOTIFICATIONS)]
    if compute:
        fragments.append(settings.fragment(settings.NOVA_COMPUTE))
    conf = settings.merged(_common(layout, 'nova'), {
        'DEFAULT': {'host': layout.host, 'my_ip': '127.0.0.1', 'state_path': layout.path('nova'),
                    'instances_path': layout.path('instances'),
                    # No Neutron: the servers boot with networks none, and no metadata service either.
                    'enabled_apis': 'osapi_compute'},
        'api': {'auth_strategy': 'keystone'},
        'api_database': {'connection': layout.db('nova_api')},
        'database': {'connection': layout.db('nova')},
        'keystone_authtoken': authtoken(layout, 'nova'),
        'placement': auth(layout, 'placement'),
        # The Neutron stub (neutron_stub.py): Nova still asks the network service with networks none.
        'neutron': auth(layout, 'nova'),
        'glance': {'region_name': REGION},
        'wsgi': {'api_paste_config': os.path.join(layout.etc, 'nova', 'api-paste.ini')},
        # The cloud has one compute host, mapped by the controller (cell_v2 discover_hosts).
        'scheduler': {'discover_hosts_in_cells_interval': '-1', 'workers': '1'},
        'conductor': {'workers': '1'},
        'vnc': {'enabled': 'false'},
        # wait_soft_reboot_seconds: the guest image ignores ACPI, so a soft reboot falls back to a hard
        # one after this wait (120 s by default).
        'libvirt': {'virt_type': 'qemu', 'cpu_mode': 'none', 'wait_soft_reboot_seconds': '10'},
        # Root, no sudo/rootwrap: the privsep daemon straight from the venv.
        'nova_sys_admin': {'helper_command': '%s --config-file %s' % (
            layout.bin('privsep-helper'), os.path.join(layout.etc, 'nova', 'nova-cpu.conf'))},
    }, *fragments)
    return conf


def masakari(layout: Layout) -> Sections:
    """masakari.conf: its engine acts on every instance (no HA_Enabled metadata needed)."""
    return settings.merged(_common(layout, 'masakari'), {
        'DEFAULT': {'os_privileged_user_name': 'masakari', 'os_privileged_user_password': PASSWORD,
                    'os_privileged_user_tenant': 'service', 'os_privileged_user_auth_url': layout.url('keystone'),
                    'os_user_domain_name': 'Default', 'os_project_domain_name': 'Default',
                    'os_region_name': REGION, 'nova_catalog_admin_info': 'compute:nova:publicURL'},
        'database': {'connection': layout.db('masakari')},
        # The engine's taskflow driver refuses to load without it (masakari-manage too).
        'taskflow': {'connection': layout.db('masakari')},
        'keystone_authtoken': authtoken(layout, 'masakari'),
        'instance_failure': {'process_all_instances': 'true'},
        'wsgi': {'api_paste_config': os.path.join(layout.etc, 'masakari', 'api-paste.ini')},
    })


def ha_guest(layout: Layout, compute: bool) -> Sections:
    """ha_guest.conf of ha-guest-compute (libvirt discovery) or ha-guest-controller (recovery sinks)."""
    conf = settings.merged(_common(layout, 'ha_guest'), {
        'DEFAULT': {'host': layout.host},
        'compute': {'state_file': layout.path('ha_guest', 'compute-state.json')},
    })
    if compute:
        return settings.merged(conf, settings.fragment(settings.HA_GUEST_COMPUTE))
    return settings.merged(conf, {
        'controller': {'fault_sinks': 'log,notifications,recovery,masakari',
                       'announce_journal': layout.path('ha_guest', 'controller-announced.jsonl')},
        'nova_api': auth(layout, 'ha_guest'),
    })


def write_all(layout: Layout) -> dict[str, str]:
    """Write every service's files; return name -> config file path."""
    files: dict[str, Sections] = {
        'keystone/keystone.conf': keystone(layout),
        'placement/placement.conf': placement(layout),
        'glance/glance-api.conf': glance(layout),
        'nova/nova.conf': nova(layout, compute=False),
        'nova/nova-cpu.conf': nova(layout, compute=True),
        'masakari/masakari.conf': masakari(layout),
        'ha_guest/controller.conf': ha_guest(layout, compute=False),
        'ha_guest/compute.conf': ha_guest(layout, compute=True),
    }
    paths: dict[str, str] = {}
    for name, sections in files.items():
        path = os.path.join(layout.etc, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        settings.write_ini(path, sections)
        paths[os.path.basename(name).split('.')[0]] = path
    # The paste files the WSGI apps look for beside their configuration (nova-api's WSGI app takes the
    # first of its OS_NOVA_CONFIG_FILES, api-paste.ini by default, as its paste file).
    shutil.copy(os.path.join(layout.venv, 'etc', 'nova', 'api-paste.ini'), layout.path('etc', 'nova'))
    shutil.copy(os.path.join(layout.venv, 'etc', 'glance', 'glance-api-paste.ini'), layout.path('etc', 'glance'))
    shutil.copy(os.path.join(layout.venv, 'etc', 'masakari', 'api-paste.ini'), layout.path('etc', 'masakari'))
    for folder in ('logs', 'lock/keystone', 'lock/placement', 'lock/glance', 'lock/nova', 'lock/masakari',
                   'lock/ha_guest', 'glance/images', 'glance/staging', 'glance/tasks', 'nova', 'instances',
                   'ha_guest', 'keystone'):
        os.makedirs(layout.path(folder), exist_ok=True)
    return paths
