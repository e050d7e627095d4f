"""The plugin's options: ``[service_available] ha_guest`` and the ``[ha_guest]`` group (oslo.config only)."""

from __future__ import annotations

from oslo_config import cfg

#: Off unless set: the tests need our driver on the compute hosts and an image with the agent.
service_option = cfg.BoolOpt(
    'ha_guest',
    default=False,
    help='Whether ha_guest is deployed: compute_driver = ha_guest.HAGuestLibvirtDriver on the compute '
         "hosts, ha-guest-compute and ha-guest-controller running, nova-api loading ha_guest's "
         'extra spec validators.',
)

group = cfg.OptGroup(name='ha_guest', title='ha_guest options')

GUEST_CONTROL_CHOICES = [
    ('none', 'The tests cannot make the guest misbehave; the fault scenarios are skipped.'),
    ('serial_pty', "Commands go to the domain's serial console pty (ha_guest.testing.guest_console): "
                   'tempest must run on the compute host as root and the image must be ha_guest\'s '
                   'test image (tools/build-guest-image.py).'),
]

opts = [
    cfg.StrOpt('image_ref',
               default='',
               help='Image whose guest runs ha-guest-agent (with kernel_id/ramdisk_id properties for a '
                    'kernel + ramdisk boot). Empty: [compute] image_ref.'),
    cfg.IntOpt('flavor_ram', default=192, min=64, help='RAM (MiB) of the flavors the tests create.'),
    cfg.IntOpt('flavor_vcpus', default=1, min=1, help='vCPUs of the flavors the tests create.'),
    cfg.IntOpt('flavor_disk', default=1, min=0,
               help='Root disk (GiB) of the flavors the tests create (Nova refuses image-backed servers with 0 '
                    'to non-admins).'),
    cfg.StrOpt('registered_regex',
               default=r'ha-guest-ctl: agent registered pid \d+',
               help="A line of the server's console output that shows the agent registered with the "
                    "host (the test image's init prints this one; another image's agent log line works too)."),
    cfg.IntOpt('boot_timeout', default=300, min=1,
               help='Seconds from the server create request to the registration line in its console output.'),
    cfg.IntOpt('detection_timeout', default=120, min=1,
               help='Seconds from the guest misbehaving to the recovery action (or the Vitrage alarm).'),
    cfg.IntOpt('recovery_timeout', default=300, min=1,
               help='Seconds from the recovery action to the guest registered again.'),
    cfg.IntOpt('quiet_period', default=30, min=1,
               help='Seconds the clean-exit scenario waits, checking that no recovery and no fault happen.'),
    cfg.StrOpt('guest_control', default='none', choices=GUEST_CONTROL_CHOICES,
               help='How the tests make the guest misbehave (stop the agent, exit it cleanly).'),
    cfg.StrOpt('libvirt_uri', default='qemu:///system',
               help='libvirt URI where the serial_pty control finds the domain of a server.'),
    cfg.BoolOpt('recovery', default=True,
                help="Whether ha-guest-controller runs the recovery sink (ha_guest:recovery = reboot acts)."),
    cfg.StrOpt('service_user', default='ha_guest',
               help='Keystone user the recovery sink acts as: the reboot in the instance actions must be '
                    'this user\'s. Empty: any user but the test\'s own.'),
    cfg.BoolOpt('vitrage', default=False,
                help="Whether Vitrage runs with ha_guest's datasource (a fault shows as an alarm on the "
                     'nova.instance).'),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The plugin's groups and options, for tempest's sample config."""
    return [(group.name, opts), ('service_available', [service_option])]
