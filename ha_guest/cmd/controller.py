"""ha-guest-controller: the fault registry and fault sinks behind the controller RPC API."""

from __future__ import annotations

import sys
from typing import Any, Optional

from oslo_config import cfg
from oslo_log import log as logging
from oslo_service.backend.base import ServiceBase  # oslo_service.service would select a backend

from ha_guest.cmd import prepare_conf

PROG = 'ha-guest-controller'

LOG = logging.getLogger(__name__)


class ControllerService(ServiceBase):
    """The controller as an oslo.service service: its manager loads the sinks and serves the RPC APIs."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        from ha_guest.controller.manager import ControllerManager

        self.conf = conf
        # Built here, not in start(): a sink that cannot load stops the process before it serves.
        self.manager: Any = ControllerManager(conf)
        self.metrics: Any = None

    def start(self) -> None:
        """Serve the controller and peer-sync APIs, start the sinks and watchers, then the [metrics] endpoint."""
        self.manager.start()
        if self.conf.metrics.listen_port is not None:
            from ha_guest.metrics.controller import ControllerCollector
            from ha_guest.metrics.server import serve

            self.metrics = serve(self.conf, [ControllerCollector(self.manager)])

    def stop(self, graceful: bool = True) -> None:
        """Stop serving metrics and RPC, drain the sinks."""
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        self.manager.stop()

    def wait(self) -> None:
        """Nothing to wait for: stop() returns once the sinks are drained."""

    def reset(self) -> None:
        """Apply reloaded options: the mutable one ([recovery] action_deadline_s) is read where it is used."""


def main(argv: Optional[list[str]] = None) -> int:
    """Run the controller until SIGTERM or SIGINT (SIGHUP reloads); return the exit status."""
    conf = prepare_conf(argv, PROG)  # refuses eventlet: before anything imports oslo.messaging
    from ha_guest.cmd.launcher import Launcher, log_start
    from ha_guest.controller.manager import SinkLoadError

    log_start(conf, PROG)
    try:
        controller = ControllerService(conf)
    except SinkLoadError as exc:
        LOG.error('%s', exc)
        return 1
    return Launcher(conf, controller, PROG).run()


if __name__ == '__main__':
    sys.exit(main())
