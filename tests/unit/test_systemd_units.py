"""The services' systemd units parse, name the right commands and users, and systemd accepts them."""

from __future__ import annotations

import configparser
import os
import pathlib
import shutil
import subprocess
import tempfile

import testtools

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
UNITS = REPO_ROOT / 'etc' / 'systemd'
SERVICES = {'ha-guest-compute': 'ha_guest.cmd.compute:main', 'ha-guest-controller': 'ha_guest.cmd.controller:main'}


def _unit(name: str) -> configparser.ConfigParser:
    """Return a unit file as sections of (case-kept) keys."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string((UNITS / ('%s.service' % name)).read_text(encoding='utf-8'))
    return parser


class TestServiceUnits(testtools.TestCase):
    """etc/systemd/ha-guest-{compute,controller}.service."""

    def test_commands_match_the_console_scripts(self) -> None:
        setup_cfg = configparser.ConfigParser(interpolation=None)
        setup_cfg.read(REPO_ROOT / 'setup.cfg')
        scripts = dict(line.split('=', 1) for line in
                       setup_cfg['entry_points']['console_scripts'].strip().splitlines())
        scripts = {name.strip(): target.strip() for name, target in scripts.items()}
        for name, target in SERVICES.items():
            self.assertEqual(target, scripts[name])
            service = _unit(name)['Service']
            self.assertEqual('/usr/local/bin/%s --config-file /etc/ha_guest/ha_guest.conf' % name,
                             service['ExecStart'])

    def test_notify_reload_restart(self) -> None:
        for name in SERVICES:
            service = _unit(name)['Service']
            # The launcher sends READY=1 (ha_guest.cmd.launcher.sd_notify); SIGHUP reloads, never stops.
            self.assertEqual('notify', service['Type'])
            self.assertEqual('main', service['NotifyAccess'])
            self.assertEqual('/bin/kill -HUP $MAINPID', service['ExecReload'])
            self.assertEqual('on-failure', service['Restart'])
            self.assertIn(_unit(name)['Install']['WantedBy'], 'multi-user.target')

    def test_unprivileged_users(self) -> None:
        compute = _unit('ha-guest-compute')['Service']
        controller = _unit('ha-guest-controller')['Service']
        for service in (compute, controller):
            self.assertEqual('ha-guest', service['User'])
            self.assertEqual('ha-guest', service['Group'])
            self.assertEqual('yes', service['NoNewPrivileges'])
            self.assertEqual('ha_guest', service['StateDirectory'])  # /var/lib/ha_guest
        # Only the compute agent needs QEMU's group (the channel sockets).
        self.assertEqual('libvirt-qemu', compute['SupplementaryGroups'])
        self.assertNotIn('SupplementaryGroups', controller)

    def test_state_directory_holds_the_default_state_file(self) -> None:
        from ha_guest.conf import compute

        default = {opt.dest: opt.default for opt in compute.OPTS}['state_file']
        self.assertEqual('/var/lib/%s' % _unit('ha-guest-compute')['Service']['StateDirectory'],
                         os.path.dirname(default))

    def test_systemd_accepts_the_units(self) -> None:
        # systemd-analyze checks every key and value; it wants ExecStart's binary to exist.
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        for name in SERVICES:
            text = (UNITS / ('%s.service' % name)).read_text(encoding='utf-8')
            with open(os.path.join(tmp, '%s.service' % name), 'w', encoding='utf-8') as handle:
                handle.write(text.replace('/usr/local/bin/%s' % name, '/bin/true'))
        analyze = shutil.which('systemd-analyze')
        self.assertIsNotNone(analyze, 'systemd-analyze (package systemd) is needed to check the units')
        proc = subprocess.run([str(analyze), 'verify', '--man=no', *sorted(os.listdir(tmp))], cwd=tmp,
                              capture_output=True, text=True, timeout=60)
        self.assertEqual((0, ''), (proc.returncode, proc.stdout + proc.stderr))

    def test_sysusers_creates_the_user_in_qemus_group(self) -> None:
        sysusers = shutil.which('systemd-sysusers')
        self.assertIsNotNone(sysusers, 'systemd-sysusers (package systemd) is needed to check the file')
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root)
        os.mkdir(os.path.join(root, 'etc'))
        proc = subprocess.run([str(sysusers), '--root', root, '--dry-run', str(UNITS / 'ha-guest.sysusers.conf')],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertIn("Creating user 'ha-guest'", proc.stdout + proc.stderr)
        self.assertIn("Creating group 'libvirt-qemu'", proc.stdout + proc.stderr)
