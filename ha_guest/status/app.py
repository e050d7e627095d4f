"""The ha-guest-status console script: a cliff App with the services' config options."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

from cliff import app, commandmanager

from ha_guest.status.errors import StatusError

#: Default seconds each RPC call waits (--timeout; a shorter [rpc] call_timeout_s wins).
DEFAULT_TIMEOUT_S = 10.0

#: The commands: "fault list" etc. (added here, not through entry points: the tool is one package).
COMMANDS = {
    'fault list': 'ha_guest.status.faults:FaultList',
    'host list': 'ha_guest.status.hosts:HostList',
    'instance list': 'ha_guest.status.instances:InstanceList',
    'instance show': 'ha_guest.status.instances:InstanceShow',
    'upgrade check': 'ha_guest.status.upgrade:UpgradeCheck',
}


def _load(path: str) -> Any:
    import importlib

    module, name = path.split(':')
    return getattr(importlib.import_module(module), name)


class StatusApp(app.App):
    """ha-guest-status: faults, compute agents and guests as the running services see them."""

    def __init__(self) -> None:
        from ha_guest.cmd.launcher import version_string

        manager = commandmanager.CommandManager('ha_guest.status.commands')
        for name, path in COMMANDS.items():
            manager.add_command(name, _load(path))
        super().__init__(description=StatusApp.__doc__, version=version_string(), command_manager=manager,
                         deferred_help=True)
        self._status: Any = None

    def build_option_parser(self, description: str | None, version: str | None,
                            argparse_kwargs: Optional[dict[str, Any]] = None) -> argparse.ArgumentParser:
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.add_argument('--config-file', metavar='PATH', action='append', default=[],
                            help='a config file of the services (repeatable; default: where ha-guest-controller '
                                 'looks, e.g. /etc/ha_guest/ha_guest.conf)')
        parser.add_argument('--config-dir', metavar='DIR', action='append', default=[],
                            help='a directory of *.conf files read after the config files')
        parser.add_argument('--timeout', metavar='SECONDS', type=float, default=None,
                            help='how long each RPC call waits for its answer (default: [rpc] call_timeout_s, '
                                 'at most %g)' % DEFAULT_TIMEOUT_S)
        return parser

    def status(self) -> Any:
        """Return this run's Status (the config is read on first use, so that help needs none)."""
        if self._status is None:
            from ha_guest.status.context import MAX_TIMEOUT_S, Status, load_conf

            conf = load_conf(self.options.config_file, self.options.config_dir)
            timeout = self.options.timeout
            if timeout is None:
                timeout = min(DEFAULT_TIMEOUT_S, float(conf.rpc.call_timeout_s))
            if not 0 < timeout <= MAX_TIMEOUT_S:
                raise StatusError('--timeout must be above 0 and at most %g s' % MAX_TIMEOUT_S)
            self._status = Status(conf, timeout)
        return self._status

    def clean_up(self, cmd: Any, result: int, err: Optional[BaseException]) -> None:
        if self._status is not None:
            self._status.close()


def main(argv: Optional[list[str]] = None) -> int:
    """Run one ha-guest-status command; return its exit status."""
    from ha_guest.cmd import prepare_process

    prepare_process()  # like the services: no eventlet, oslo.service's threading backend
    return int(StatusApp().run(list(sys.argv[1:] if argv is None else argv)))


if __name__ == '__main__':
    sys.exit(main())
