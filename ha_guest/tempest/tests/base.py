"""Shared parts of ha_guest's tempest tests: the flavors, the boot, the console and the instance actions."""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any, Callable, Iterator, Optional, TypeVar

from oslo_log import log as logging
from tempest import config
from tempest.api.compute import base
from tempest.lib import exceptions as lib_exc
from tempest.lib.common.utils import data_utils

CONF = config.CONF
LOG = logging.getLogger(__name__)
T = TypeVar('T')

HEARTBEAT = 'ha_guest:heartbeat'
SERVER_GROUP_MESSAGING = 'ha_guest:server_group_messaging'
RECOVERY = 'ha_guest:recovery'
#: Nova returns at most this much of a console log's tail; the tests read it all.
_POLL_S = 1.0


class HAGuestBaseTest(base.BaseV2ComputeAdminTest):
    """Admin and primary clients at microversion 2.86 (extra spec validation; 2.37's networks: none)."""

    min_microversion = '2.86'

    @classmethod
    def skip_checks(cls) -> None:
        super().skip_checks()
        if not CONF.service_available.ha_guest:
            raise cls.skipException('[service_available] ha_guest is False')

    def create_ha_flavor(self, **extra_specs: str) -> dict[str, Any]:
        """A public flavor of the [ha_guest] size with ``extra_specs`` set (removed at cleanup)."""
        flavor = self.create_flavor(ram=CONF.ha_guest.flavor_ram, vcpus=CONF.ha_guest.flavor_vcpus,
                                    disk=CONF.ha_guest.flavor_disk,
                                    name=data_utils.rand_name(prefix=CONF.resource_name_prefix,
                                                              name='ha-guest-flavor'))
        if extra_specs:
            self.admin_flavors_client.set_flavor_extra_spec(flavor['id'], **extra_specs)
        return flavor


def wait_until(what: str, timeout: float, probe: Callable[[], Optional[T]], interval: float = _POLL_S) -> T:
    """Call ``probe`` until it returns something other than None; TimeoutException after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise lib_exc.TimeoutException('%s: not within %gs' % (what, timeout))
        time.sleep(interval)


class HAGuestScenarioTest(HAGuestBaseTest):
    """Servers booted with a heartbeat flavor from the [ha_guest] image, watched through Nova's API."""

    @classmethod
    def skip_checks(cls) -> None:
        super().skip_checks()
        if not CONF.compute_feature_enabled.console_output:
            raise cls.skipException('the tests read the console output: [compute-feature-enabled] console_output')

    def setUp(self) -> None:
        super().setUp()
        self.figures: dict[str, float] = {}
        self.addCleanup(self._print_figures)

    def _print_figures(self) -> None:
        if self.figures:
            text = ', '.join('%s %.1f s' % item for item in sorted(self.figures.items()))
            LOG.info('%s figures: %s', self.id(), text)
            self.addDetail('ha_guest-figures', _text(text))

    def boot(self, **extra_specs: str) -> tuple[dict[str, Any], str]:
        """Boot a server with a flavor of ``extra_specs``; wait for its registration; return it and its output."""
        flavor = self.create_ha_flavor(**extra_specs)
        image = CONF.ha_guest.image_ref or CONF.compute.image_ref
        started = time.monotonic()
        server = self.create_test_server(flavor=flavor['id'], image_id=image, networks='none',
                                         wait_until='ACTIVE')
        self.figures['boot to ACTIVE'] = time.monotonic() - started
        output = self.wait_registered(server['id'], CONF.ha_guest.boot_timeout)
        self.figures['boot to registered'] = time.monotonic() - started
        return server, output

    def console_output(self, server_id: str) -> str:
        """The server's console log as Nova's os-getConsoleOutput gives it (its tail)."""
        return str(self.servers_client.get_console_output(server_id)['output'] or '')

    def wait_registered(self, server_id: str, timeout: float, after: str = '') -> str:
        """Wait for a registration line in the console output newer than ``after`` (an earlier output)."""
        regex = re.compile(CONF.ha_guest.registered_regex, re.M)
        before = len(regex.findall(after))

        def registered() -> Optional[str]:
            try:
                output = self.console_output(server_id)
            except lib_exc.NotFound:
                # While a hard reboot re-creates the domain, Nova answers 404 "Guest does not
                # have a console available": not yet, ask again (a server gone times out below).
                return None
            # Nova's log either grows (the old text is a prefix, so a new line means one more
            # match) or was started afresh by the domain's restart (any match is new).
            fresh = not output.startswith(after)
            count = len(regex.findall(output))
            return output if count > (0 if fresh else before) else None

        try:
            return wait_until('registration of server %s' % server_id, timeout, registered)
        except lib_exc.TimeoutException as exc:
            try:
                self.addDetail('console-output', _text(self.console_output(server_id)[-8000:]))
            except lib_exc.NotFound as gone:
                self.addDetail('console-output', _text('no console: %s' % gone))
            raise exc

    def reboots(self, server_id: str) -> list[dict[str, Any]]:
        """The server's ``reboot`` instance actions (admin view)."""
        actions = self.admin_servers_client.list_instance_actions(server_id)['instanceActions']
        return [action for action in actions if action['action'] == 'reboot']

    def service_user_id(self) -> Optional[str]:
        """The id of [ha_guest] service_user, or None when the option is empty."""
        name = CONF.ha_guest.service_user
        if not name:
            return None
        users = self.os_admin.users_v3_client.list_users(name=name)['users']
        if len(users) != 1:
            raise lib_exc.InvalidConfiguration('[ha_guest] service_user %r: %d Keystone users' % (name, len(users)))
        return str(users[0]['id'])

    @contextlib.contextmanager
    def guest_console(self, server_id: str) -> Iterator[Any]:
        """The serial console of the server's domain, opened for commands (serial_pty control only)."""
        if CONF.ha_guest.guest_control != 'serial_pty':
            raise self.skipException('[ha_guest] guest_control = %s' % CONF.ha_guest.guest_control)
        # Imported here: only the serial_pty control needs it (stdlib, libvirt-python or virsh).
        from ha_guest.testing import guest_console

        server = self.admin_servers_client.show_server(server_id)['server']
        domain = server['OS-EXT-SRV-ATTR:instance_name']
        with guest_console.GuestConsole(domain, CONF.ha_guest.libvirt_uri) as console:
            console.send('ping', timeout=30)
            yield console


def _text(value: str) -> Any:
    """A testtools detail of plain text."""
    from testtools import content

    return content.text_content(value)
