"""What a deployment with ha_guest writes into tempest.conf (stdlib only; devstack's test-config and the cloud env).

One place for the plugin's settings, used two ways:

- ``tempest_options(...)`` returns them as ``{section: {option: value}}`` for a
  writer in Python (ha_guest.testing.tempest_run, for ``tox -e cloud``);
- ``python -m ha_guest.tempest.settings [--image-ref ID] ...`` prints one
  ``section option value`` line each, for devstack's ``iniset $TEMPEST_CONFIG``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

Sections = dict[str, dict[str, str]]

def tempest_options(*, image_ref: str = '', guest_control: str = 'none', recovery: bool = True,
                    vitrage: bool = False, service_user: str = 'ha_guest',
                    libvirt_uri: str = 'qemu:///system') -> Sections:
    """The tempest.conf options that turn the ha_guest tests on for a deployment."""
    group = {
        'guest_control': guest_control,
        'recovery': str(recovery),
        'vitrage': str(vitrage),
        'service_user': service_user,
        'libvirt_uri': libvirt_uri,
    }
    if image_ref:
        group['image_ref'] = image_ref
    return {
        'service_available': {'ha_guest': 'True'},
        'ha_guest': group,
    }


def lines(sections: Sections) -> list[str]:
    """``section option value`` lines (values may hold spaces; section and option never do)."""
    return ['%s %s %s' % (section, option, value)
            for section, options in sections.items() for option, value in options.items()]


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ('1', 'true', 'yes', 'on'):
        return True
    if lowered in ('0', 'false', 'no', 'off'):
        return False
    raise argparse.ArgumentTypeError('not a boolean: %r' % text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the options as ``section option value`` lines."""
    parser = argparse.ArgumentParser(prog='python -m ha_guest.tempest.settings', description=__doc__.splitlines()[0])
    parser.add_argument('--image-ref', default='', help='image running ha-guest-agent ([ha_guest] image_ref)')
    parser.add_argument('--guest-control', default='none', choices=('none', 'serial_pty'))
    parser.add_argument('--recovery', type=_bool, default=True, help='the controller runs the recovery sink')
    parser.add_argument('--vitrage', type=_bool, default=False, help="Vitrage runs with ha_guest's datasource")
    parser.add_argument('--service-user', default='ha_guest', help='Keystone user of the recovery sink')
    parser.add_argument('--libvirt-uri', default='qemu:///system')
    args = parser.parse_args(argv)
    options = tempest_options(image_ref=args.image_ref, guest_control=args.guest_control, recovery=args.recovery,
                              vitrage=args.vitrage, service_user=args.service_user, libvirt_uri=args.libvirt_uri)
    sys.stdout.write(''.join(line + '\n' for line in lines(options)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
