"""Checks that the devstack plugin parses, has its phases, and writes only options ha_guest has."""

from __future__ import annotations

import grp
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

import testtools
from oslo_log import _options as log_options

from ha_guest.conf import opts

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGIN = REPO_ROOT / 'devstack' / 'plugin.sh'
SETTINGS = REPO_ROOT / 'devstack' / 'settings'

# `iniset "$HA_GUEST_CONF" <group> <option> ...` as written in plugin.sh.
INISET_HA_GUEST = re.compile(r'^\s*iniset\s+"?\$\{?HA_GUEST_CONF\}?"?\s+"?([\w.-]+)"?\s+"?([\w.-]+)"?', re.M)

# Just enough of devstack's functions to run the plugin's phases: every call
# that matters is logged as one line, "<function>|<arg>|<arg>...".
STUBS = r'''
LOG=$STUB_LOG
function _log { local IFS='|'; echo "$*" >> "$LOG"; }
function is_service_enabled {
    # devstack's own also takes "nova" for any n-* service.
    local s; for s in "$@"; do
        [[ ,$ENABLED_SERVICES, == *,$s,* ]] && return 0
        [[ $s == nova && ,$ENABLED_SERVICES, == *,n-* ]] && return 0
    done; return 1
}
function get_python_exec_prefix { echo "${STUB_BIN:-/opt/stack/data/venv/bin}"; }
function trueorfalse { local value=${!2:-$1}; [[ ${value,,} == true ]] && echo True || echo False; }
function openstack { _log openstack "$@"; echo "id-$5"; }
function iniset { _log iniset "$@"; }
function iniget { :; }
function iniset_rpc_backend { _log iniset_rpc_backend "$@"; }
function setup_logging { :; }
function echo_summary { :; }
function is_ubuntu { return 0; }
function install_package { _log install_package "$@"; }
function setup_install { _log setup_install "$@"; }
function setup_develop { _log setup_develop "$@"; }
function create_service_user { _log create_service_user "$@"; }
function run_process { _log run_process "$@"; }
function stop_process { _log stop_process "$@"; }
function warn { _log warn "$@"; }
function die { _log die "$@"; exit 1; }
function sudo { _log sudo "$@"; if [[ $1 == tee ]]; then cat >> "$LOG.tee"; fi; }
function install { _log install "$@"; }
function vitrage { _log vitrage "$@"; }
'''


def _ha_guest_options() -> dict[str, set[str]]:
    """Return {group: option names} of every ha_guest option, plus oslo.log's (the services register them)."""
    known: dict[str, set[str]] = {}
    for listing in (opts.list_opts(), log_options.list_opts()):
        for group, group_opts in listing:
            name = 'DEFAULT' if group is None else getattr(group, 'name', group)
            known.setdefault(name, set()).update(opt.dest for opt in group_opts)
    return known


class TestDevstackPlugin(testtools.TestCase):
    """The plugin is valid bash, uses devstack's phases, and cannot drift from ha_guest's options."""

    def setUp(self) -> None:
        super().setUp()
        self.text = PLUGIN.read_text(encoding='utf-8')
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)

    def _run(self, *phase: str, services: str, virt_driver: str = 'libvirt',
             plugins: str = ',vitrage,ha_guest', **extra_env: str) -> tuple[int, list[list[str]]]:
        """Source settings and run one phase of plugin.sh under the stubs; return its status and calls."""
        log = os.path.join(self.tmp, 'calls')
        open(log, 'w').close()
        script = '%s\nsource %s\nsource %s %s\n' % (STUBS, SETTINGS, PLUGIN, ' '.join(phase))
        env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'STUB_LOG': log, 'ENABLED_SERVICES': services,
            'VIRT_DRIVER': virt_driver, 'DEVSTACK_PLUGINS': plugins, 'DEST': '/opt/stack',
            'DATA_DIR': '/opt/stack/data', 'NOVA_CONF': '/etc/nova/nova.conf', 'STACK_USER': 'stack',
            'VITRAGE_CONF': '/etc/vitrage/vitrage.conf', 'VITRAGE_CONF_DIR': '/etc/vitrage',
            'KEYSTONE_SERVICE_URI': 'http://keystone/identity', 'SERVICE_PASSWORD': 'secret',
            'SERVICE_DOMAIN_NAME': 'Default', 'SERVICE_PROJECT_NAME': 'service', 'REGION_NAME': 'RegionOne',
            'ENABLE_DEBUG_LOG_LEVEL': 'True',
            'HA_GUEST_NOVA_COMPUTE_FRAGMENT': str(REPO_ROOT / 'etc' / 'nova' / 'ha_guest-compute.conf'),
            'HA_GUEST_NOVA_NOTIFICATIONS_FRAGMENT': str(REPO_ROOT / 'etc' / 'nova' / 'ha_guest-notifications.conf'),
            **extra_env,
        }
        proc = subprocess.run(['bash', '-c', script], env=env, capture_output=True, text=True, timeout=60)
        with open(log, encoding='utf-8') as calls:
            return proc.returncode, [line.rstrip('\n').split('|') for line in calls]

    def test_bash_syntax(self) -> None:
        for path in (PLUGIN, SETTINGS):
            proc = subprocess.run(['bash', '-n', str(path)], capture_output=True, text=True)
            self.assertEqual(0, proc.returncode, '%s: %s' % (path, proc.stderr))

    def test_phases_and_functions(self) -> None:
        for phase in ('"$1" == "stack" && "$2" == "install"', '"$1" == "stack" && "$2" == "post-config"',
                      '"$1" == "stack" && "$2" == "extra"', '"$1" == "unstack"', '"$1" == "clean"'):
            self.assertIn(phase, self.text)
        for function in ('install_ha_guest', 'configure_ha_guest', 'configure_nova_for_ha_guest',
                         'configure_vitrage_for_ha_guest', 'start_ha_guest', 'stop_ha_guest', 'cleanup_ha_guest'):
            self.assertRegex(self.text, r'(?m)^function %s \{' % function)
        settings = SETTINGS.read_text(encoding='utf-8')
        self.assertRegex(settings, r'(?m)^enable_service ha-guest-compute ha-guest-controller$')

    def test_every_ha_guest_option_written_exists(self) -> None:
        known = _ha_guest_options()
        written = INISET_HA_GUEST.findall(self.text)
        self.assertGreater(len(written), 10)
        unknown = ['[%s] %s' % (group, option) for group, option in written
                   if option not in known.get(group, set())]
        self.assertEqual([], unknown)

    def test_install_is_not_editable(self) -> None:
        status, calls = self._run('stack', 'install', services='n-cpu,n-api,ha-guest-compute,ha-guest-controller')
        self.assertEqual(0, status)
        self.assertIn(['setup_install', '/opt/stack/ha_guest', 'libvirt'], calls)
        self.assertNotIn('setup_develop', [call[0] for call in calls])
        # Without nova-compute, no libvirt extra.
        status, calls = self._run('stack', 'install', services='ha-guest-controller')
        self.assertIn(['setup_install', '/opt/stack/ha_guest', ''], calls)

    def test_post_config_single_node(self) -> None:
        status, calls = self._run('stack', 'post-config',
                                  services='key,n-api,n-cpu,vitrage-graph,ha-guest-compute,ha-guest-controller')
        self.assertEqual(0, status)
        conf = '/etc/ha_guest/ha_guest.conf'
        written = {(call[2], call[3]): call[4] for call in calls if call[0] == 'iniset' and call[1] == conf}
        known = _ha_guest_options()
        self.assertEqual([], [key for key in written if key[1] not in known.get(key[0], set())])
        self.assertEqual('log,notifications,vitrage,recovery', written[('controller', 'fault_sinks')])
        self.assertEqual('libvirt', written[('compute', 'discovery_driver')])
        self.assertEqual('password', written[('nova_api', 'auth_type')])
        self.assertIn(['iniset_rpc_backend', 'ha_guest', conf], calls)
        self.assertIn(['create_service_user', 'ha_guest', 'admin'], calls)
        nova = {(call[2], call[3]): call[4] for call in calls
                if call[0] == 'iniset' and call[1] == '/etc/nova/nova.conf'}
        self.assertEqual('ha_guest.HAGuestLibvirtDriver', nova[('DEFAULT', 'compute_driver')])
        # Nova's default (unversioned) is kept beside the versioned ones.
        self.assertEqual('both', nova[('notifications', 'notification_format')])
        self.assertEqual('vm_and_task_state', nova[('notifications', 'notify_on_state_change')])
        self.assertEqual('messagingv2', nova[('oslo_messaging_notifications', 'driver')])
        vitrage = {(call[2], call[3]): call[4] for call in calls
                   if call[0] == 'iniset' and call[1] == '/etc/vitrage/vitrage.conf'}
        self.assertTrue(vitrage[('datasources', 'types')].endswith(',ha_guest'))
        self.assertEqual('vitrage.datasources,ha_guest.vitrage.datasources', vitrage[('datasources', 'path')])

    def test_notification_format_never_switched_away(self) -> None:
        for current, expected in (('versioned', 'versioned'), ('both', 'both'), ('unversioned', 'both')):
            status, calls = self._run('stack', 'post-config', services='n-cpu,ha-guest-compute',
                                      NOVA_NOTIFICATION_FORMAT=current)
            self.assertEqual(0, status)
            formats = [call[4] for call in calls if call[0] == 'iniset' and call[3] == 'notification_format']
            self.assertEqual(expected, formats[-1], current)

    def test_nova_options_reach_compute_and_cell_conductors(self) -> None:
        conf_dir = os.path.join(self.tmp, 'nova')
        os.mkdir(conf_dir)
        for name in ('nova-cpu.conf', 'nova_cell1.conf', 'nova_cell2.conf'):
            open(os.path.join(conf_dir, name), 'w').close()
        status, calls = self._run('stack', 'post-config', services='n-cpu,n-cond,ha-guest-compute',
                                  NOVA_CONF_DIR=conf_dir, NOVA_CPU_CONF=os.path.join(conf_dir, 'nova-cpu.conf'))
        self.assertEqual(0, status)
        # Every option of the shared fragments (etc/nova, also applied by tox -e cloud), in every file.
        expected = set()
        for fragment in ('ha_guest-compute.conf', 'ha_guest-notifications.conf'):
            section = ''
            for line in (REPO_ROOT / 'etc' / 'nova' / fragment).read_text(encoding='utf-8').splitlines():
                line = line.split('#', 1)[0].strip()
                if line.startswith('['):
                    section = line.strip('[]')
                elif '=' in line:
                    expected.add((section, line.split('=', 1)[0].strip()))
        self.assertIn(('DEFAULT', 'compute_driver'), expected)
        for conf in ('/etc/nova/nova.conf', *(os.path.join(conf_dir, n) for n in
                                              ('nova-cpu.conf', 'nova_cell1.conf', 'nova_cell2.conf'))):
            written = {(call[2], call[3]) for call in calls if call[0] == 'iniset' and call[1] == conf}
            self.assertLessEqual(expected, written, conf)

    def test_post_config_without_vitrage_or_libvirt(self) -> None:
        status, calls = self._run('stack', 'post-config', virt_driver='fake',
                                  services='n-cpu,ha-guest-compute,ha-guest-controller')
        self.assertEqual(0, status)
        sinks = [call[4] for call in calls if call[0] == 'iniset' and call[3] == 'fault_sinks']
        self.assertEqual(['log,notifications,recovery'], sinks)
        self.assertNotIn('compute_driver', [call[3] for call in calls if call[0] == 'iniset'])
        self.assertIn('warn', [call[0] for call in calls])

    def test_extra_starts_services_and_loads_template(self) -> None:
        status, calls = self._run('stack', 'extra',
                                  services='n-cpu,vitrage-graph,ha-guest-compute,ha-guest-controller')
        self.assertEqual(0, status)
        started = [call[1] for call in calls if call[0] == 'run_process']
        self.assertEqual(['ha-guest-controller', 'ha-guest-compute'], started)
        runs = {call[1]: call[2:] for call in calls if call[0] == 'run_process'}
        # The controller as devstack's $STACK_USER, the agent as its unprivileged user, never root.
        self.assertEqual(['/opt/stack/data/venv/bin/ha-guest-controller --config-file /etc/ha_guest/ha_guest.conf'],
                         runs['ha-guest-controller'])
        self.assertEqual(['/opt/stack/data/venv/bin/ha-guest-compute --config-file /etc/ha_guest/ha_guest.conf',
                          '', 'ha-guest'], runs['ha-guest-compute'])
        self.assertIn('vitrage', [call[0] for call in calls])
        # Both units get restart-on-failure and sd_notify readiness, before they start.
        sudo = [call[1:] for call in calls if call[0] in ('sudo', 'run_process')]
        for service in ('ha-guest-controller', 'ha-guest-compute'):
            dropin = '/etc/systemd/system/devstack@%s.service.d/ha_guest.conf' % service
            self.assertLess(sudo.index(['tee', dropin]), [c[0] for c in sudo].index(service))
        with open(os.path.join(self.tmp, 'calls.tee'), encoding='utf-8') as tee:
            units = tee.read()
        for line in ('Type=notify', 'Restart=on-failure', 'KillMode=mixed'):
            self.assertEqual(2, units.count(line + '\n'), line)
        # No agent without nova-compute on the host.
        status, calls = self._run('stack', 'extra', services='ha-guest-compute,ha-guest-controller')
        self.assertEqual(['ha-guest-controller'], [call[1] for call in calls if call[0] == 'run_process'])

    def test_compute_user_in_qemus_group_owns_the_state_dir(self) -> None:
        status, calls = self._run('stack', 'post-config', services='n-cpu,ha-guest-compute,ha-guest-controller',
                                  HA_GUEST_QEMU_GROUP='kvm', HA_GUEST_COMPUTE_USER='hg-test-nobody')
        self.assertEqual(0, status)
        sudo = [call[1:] for call in calls if call[0] == 'sudo']
        self.assertIn(['useradd', '--system', '--user-group', '--home-dir', '/opt/stack/data/ha_guest',
                       '--shell', '/usr/sbin/nologin', 'hg-test-nobody'], sudo)
        self.assertIn(['usermod', '--append', '--groups', 'kvm', 'hg-test-nobody'], sudo)
        self.assertIn(['install', '-d', '-o', 'hg-test-nobody', '-g', 'stack', '-m', '770',
                       '/opt/stack/data/ha_guest'], sudo)
        # The state file the agent writes is in that directory.
        state = [call[4] for call in calls if call[0] == 'iniset' and call[3] == 'state_file']
        self.assertEqual(['/opt/stack/data/ha_guest/compute-state.json'], state)
        journal = [call[4] for call in calls if call[0] == 'iniset' and call[3] == 'announce_journal']
        self.assertEqual(['/opt/stack/data/ha_guest/controller-announced.jsonl'], journal)
        # A controller-only host makes no user; the directory stays devstack's.
        status, calls = self._run('stack', 'post-config', services='ha-guest-controller')
        sudo = [call[1:] for call in calls if call[0] == 'sudo']
        self.assertEqual([], [call for call in sudo if call[0] in ('useradd', 'usermod')])
        self.assertIn(['install', '-d', '-o', 'stack', '-m', '755', '/opt/stack/data/ha_guest'], sudo)

    def test_qemu_group_found_without_setting(self) -> None:
        def qemu_group(conf_text: Optional[str], directory: str) -> str:
            conf = os.path.join(self.tmp, 'qemu.conf')
            if conf_text is None:
                conf = os.path.join(self.tmp, 'missing.conf')
            else:
                with open(conf, 'w', encoding='utf-8') as handle:
                    handle.write(conf_text)
            script = '%s\nsource %s\nsource %s\n_ha_guest_qemu_group\n' % (STUBS, SETTINGS, PLUGIN)
            env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'STUB_LOG': os.path.join(self.tmp, 'calls'),
                   'ENABLED_SERVICES': '', 'DEST': '/opt/stack', 'DATA_DIR': '/opt/stack/data',
                   '_HA_GUEST_QEMU_CONF': conf, '_HA_GUEST_QEMU_DIR': directory}
            proc = subprocess.run(['bash', '-c', script], env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(0, proc.returncode, proc.stderr)
            return proc.stdout.strip().splitlines()[-1]

        # qemu.conf's group wins (the last one set), a commented one does not count.
        self.assertEqual('qemu', qemu_group('#group = "nobody"\ngroup = "kvm"\n group = "qemu" # ours\n', '/nope'))
        # Else the group owning QEMU's directory (its channel sockets' folders).
        owned = os.path.join(self.tmp, 'qemu-dir')
        os.mkdir(owned)
        self.assertEqual(grp.getgrgid(os.stat(owned).st_gid).gr_name, qemu_group('#group = "kvm"\n', owned))
        # Else Debian's.
        self.assertEqual('libvirt-qemu', qemu_group(None, '/nope'))

    def test_test_config_writes_tempest_options(self) -> None:
        # The plugin's options come from ha_guest.tempest.settings, run by the venv's Python.
        bin_dir = os.path.join(self.tmp, 'bin')
        os.mkdir(bin_dir)
        os.symlink(sys.executable, os.path.join(bin_dir, 'python'))
        status, calls = self._run('stack', 'test-config', services='n-cpu,g-api,tempest,ha-guest-compute',
                                  plugins=',ha_guest', STUB_BIN=bin_dir, TEMPEST_CONFIG='/etc/tempest.conf',
                                  PYTHONPATH=str(REPO_ROOT))
        self.assertEqual(0, status)
        tempest = {(call[2], call[3]): call[4] for call in calls
                   if call[0] == 'iniset' and call[1] == '/etc/tempest.conf'}
        self.assertEqual('True', tempest[('service_available', 'ha_guest')])
        self.assertEqual('serial_pty', tempest[('ha_guest', 'guest_control')])
        self.assertEqual('False', tempest[('ha_guest', 'vitrage')])
        self.assertEqual('ha_guest', tempest[('ha_guest', 'service_user')])
        # Our guest image went into Glance as kernel, ramdisk and the machine image tempest boots.
        self.assertEqual('id-ha-guest', tempest[('ha_guest', 'image_ref')])
        images = [call for call in calls if call[0] == 'openstack']
        self.assertEqual(['ha-guest-kernel', 'ha-guest-ramdisk', 'ha-guest'], [call[5] for call in images])
        self.assertIn('kernel_id=id-ha-guest-kernel', images[2])
        self.assertIn('ramdisk_id=id-ha-guest-ramdisk', images[2])
        # Without tempest on the host, nothing.
        status, calls = self._run('stack', 'test-config', services='n-cpu,ha-guest-compute', STUB_BIN=bin_dir)
        self.assertEqual([], [call for call in calls if call[0] in ('iniset', 'openstack')])

    def test_unstack_and_clean(self) -> None:
        services = 'n-cpu,ha-guest-compute,ha-guest-controller'
        status, calls = self._run('unstack', services=services)
        self.assertEqual(0, status)
        self.assertEqual(['ha-guest-compute', 'ha-guest-controller'],
                         [call[1] for call in calls if call[0] == 'stop_process'])
        status, calls = self._run('clean', services=services)
        self.assertIn(['sudo', 'rm', '-rf', '/etc/ha_guest', '/opt/stack/data/ha_guest'], calls)

    def test_warns_when_vitrage_plugin_did_not_load(self) -> None:
        # enable_plugin vitrage on its empty master: devstack skipped it, vitrage-graph is not enabled.
        status, calls = self._run('stack', 'install', plugins=',vitrage,ha_guest', services='n-cpu,ha-guest-compute')
        self.assertEqual(0, status)
        warnings = [' '.join(call[2:]) for call in calls if call[0] == 'warn']
        self.assertEqual(1, len(warnings))
        self.assertIn('stable/2025.2', warnings[0])

    def test_refuses_to_run_before_vitrage(self) -> None:
        status, calls = self._run('stack', 'install', plugins=',ha_guest,vitrage',
                                  services='vitrage-graph,ha-guest-controller')
        self.assertEqual(1, status)
        self.assertEqual('die', calls[-1][0])
