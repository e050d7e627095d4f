"""Run ha_guest's tempest plugin against a running cloud: write a workspace and tempest.conf, run ``tempest run``.

    python -m ha_guest.testing.tempest_run --workspace DIR --auth-url http://127.0.0.1:5000/v3 \
        --password secret --image-ref IMAGE_ID --guest-control serial_pty

Given the cloud's admin credentials and Keystone URL, it writes ``DIR/etc/tempest.conf``
(tempest's own options for a cloud without Neutron, Cinder and Swift, plus the plugin's
from ha_guest.tempest.settings, the list the devstack plugin writes too) and runs
``tempest run --regex ^ha_guest\\.tempest`` in ``DIR`` with a time limit. tempest
comes from the same venv as this Python (or --tempest). The serial_pty control
needs this to run as root on the compute host.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Optional, Sequence

from ha_guest.tempest import settings

Sections = settings.Sections

#: Every test of the plugin, and nothing of tempest's own.
REGEX = r'^ha_guest\.tempest\.'
_INIT_TIMEOUT_S = 120.0
_TOTALS = re.compile(r'^ - (Passed|Failed|Skipped): (\d+)$', re.M)


@dataclasses.dataclass(frozen=True)
class Cloud:
    """What tempest needs to know about a running cloud."""

    auth_url: str  # Keystone's v3 URL
    password: str
    username: str = 'admin'
    project: str = 'admin'
    domain: str = 'Default'
    region: str = 'RegionOne'
    image_ref: str = ''
    guest_control: str = 'none'
    recovery: bool = True
    vitrage: bool = False
    service_user: str = 'ha_guest'
    libvirt_uri: str = 'qemu:///system'


@dataclasses.dataclass(frozen=True)
class Result:
    """How a ``tempest run`` ended."""

    returncode: int
    output: str
    seconds: float
    passed: int
    failed: int
    skipped: int


def tempest_conf(cloud: Cloud, workspace: str) -> Sections:
    """tempest.conf for the cloud: Keystone v3, dynamic credentials, Nova and Glance only, our options."""
    auth_url = cloud.auth_url.rstrip('/')
    if not auth_url.endswith('/v3'):
        auth_url += '/v3'
    conf: Sections = {
        'DEFAULT': {'log_dir': os.path.join(workspace, 'logs'), 'log_file': 'tempest.log'},
        'oslo_concurrency': {'lock_path': os.path.join(workspace, 'tempest_lock')},
        'auth': {
            'use_dynamic_credentials': 'True',
            'create_isolated_networks': 'False',
            'admin_username': cloud.username,
            'admin_password': cloud.password,
            'admin_project_name': cloud.project,
            'admin_domain_name': cloud.domain,
        },
        'identity': {'uri_v3': auth_url, 'auth_version': 'v3', 'region': cloud.region},
        'identity-feature-enabled': {'api_v2': 'False'},
        'service_available': {'nova': 'True', 'glance': 'True', 'neutron': 'False', 'cinder': 'False',
                              'swift': 'False', 'horizon': 'False'},
        # tempest's default max_microversion (None) would skip every test above 2.1.
        'compute': {'max_microversion': 'latest', 'build_timeout': '300'},
        'compute-feature-enabled': {'console_output': 'True'},
        'validation': {'run_validation': 'False'},
    }
    if cloud.image_ref:
        conf['compute']['image_ref'] = cloud.image_ref
    ours = settings.tempest_options(image_ref=cloud.image_ref, guest_control=cloud.guest_control,
                                    recovery=cloud.recovery, vitrage=cloud.vitrage,
                                    service_user=cloud.service_user, libvirt_uri=cloud.libvirt_uri)
    for section, options in ours.items():
        conf.setdefault(section, {}).update(options)
    return conf


def write_ini(path: str, sections: Sections) -> None:
    """Write ``sections`` as an ini file (DEFAULT first)."""
    lines: list[str] = []
    for section in sorted(sections, key=lambda name: (name != 'DEFAULT', name)):
        lines.append('[%s]' % section)
        lines.extend('%s = %s' % item for item in sections[section].items())
        lines.append('')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))


def tempest_command(tempest: Optional[str] = None) -> str:
    """The ``tempest`` script: given, beside this Python, or on PATH."""
    if tempest:
        return tempest
    beside = os.path.join(os.path.dirname(sys.executable), 'tempest')
    found = beside if os.path.exists(beside) else shutil.which('tempest')
    if not found:
        raise RuntimeError('no tempest here: pip install tempest==47.0.0 into this venv or pass --tempest')
    return found


def prepare(cloud: Cloud, workspace: str, tempest: Optional[str] = None) -> str:
    """Create the workspace (``tempest init``, once) and write its tempest.conf; return the conf's path."""
    workspace = os.path.abspath(workspace)
    if not os.path.exists(os.path.join(workspace, '.stestr.conf')):
        # The workspace registry stays inside the workspace, not in ~/.tempest.
        subprocess.run([tempest_command(tempest), 'init', '--workspace-path',
                        os.path.join(workspace, 'workspace.yaml'), workspace],
                       check=True, capture_output=True, timeout=_INIT_TIMEOUT_S)
    path = os.path.join(workspace, 'etc', 'tempest.conf')
    write_ini(path, tempest_conf(cloud, workspace))
    return path


def run(cloud: Cloud, workspace: str, regex: str = REGEX, timeout: float = 1800.0, concurrency: int = 1,
        tempest: Optional[str] = None) -> Result:
    """Run the plugin's tests against the cloud; return how it went (tempest's output included)."""
    prepare(cloud, workspace, tempest)
    started = time.monotonic()
    command = [tempest_command(tempest), 'run', '--regex', regex, '--concurrency', str(concurrency)]
    try:
        proc = subprocess.run(command, cwd=os.path.abspath(workspace), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
        returncode, output = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as exc:
        returncode = -1
        output = (exc.stdout.decode(errors='replace') if isinstance(exc.stdout, bytes) else exc.stdout or '')
        output += '\ntempest run did not end within %.0fs' % timeout
    totals = {name: int(count) for name, count in _TOTALS.findall(output)}
    return Result(returncode, output, time.monotonic() - started, totals.get('Passed', 0),
                  totals.get('Failed', 0), totals.get('Skipped', 0))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: write the workspace, run the tests, print tempest's output; exit with its status."""
    parser = argparse.ArgumentParser(prog='python -m ha_guest.testing.tempest_run',
                                     description=(__doc__ or '').splitlines()[0])
    parser.add_argument('--workspace', required=True)
    parser.add_argument('--auth-url', required=True, help="Keystone's URL (v3)")
    parser.add_argument('--password', default=os.environ.get('OS_PASSWORD', ''),
                        help='admin password (default $OS_PASSWORD)')
    parser.add_argument('--username', default='admin')
    parser.add_argument('--project', default='admin')
    parser.add_argument('--domain', default='Default')
    parser.add_argument('--region', default='RegionOne')
    parser.add_argument('--image-ref', default='')
    parser.add_argument('--guest-control', default='none', choices=('none', 'serial_pty'))
    parser.add_argument('--no-recovery', action='store_true', help='the controller has no recovery sink')
    parser.add_argument('--vitrage', action='store_true')
    parser.add_argument('--service-user', default='ha_guest')
    parser.add_argument('--regex', default=REGEX)
    parser.add_argument('--timeout', type=float, default=1800.0)
    parser.add_argument('--tempest', default=None, help='the tempest script (default: beside this Python)')
    args = parser.parse_args(argv)
    cloud = Cloud(auth_url=args.auth_url, password=args.password, username=args.username, project=args.project,
                  domain=args.domain, region=args.region, image_ref=args.image_ref,
                  guest_control=args.guest_control, recovery=not args.no_recovery, vitrage=args.vitrage,
                  service_user=args.service_user)
    result = run(cloud, args.workspace, args.regex, args.timeout, tempest=args.tempest)
    sys.stdout.write(result.output)
    print('tempest: %d passed, %d failed, %d skipped in %.0f s' % (result.passed, result.failed, result.skipped,
                                                                   result.seconds))
    return result.returncode


if __name__ == '__main__':
    sys.exit(main())
