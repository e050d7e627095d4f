"""ha-guest-compute: the compute agent (one per compute node)."""

from __future__ import annotations

import gc
import sys
from typing import Any, List, Optional

from oslo_config import cfg
from oslo_log import log as logging
from oslo_service.backend.base import ServiceBase  # oslo_service.service would select a backend

from ha_guest.cmd import prepare_conf

PROG = "ha-guest-compute"

LOG = logging.getLogger(PROG)


class ComputeService(ServiceBase):
    """The compute agent as an oslo.service service: manager, RPC server and their transport."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self.manager: Any = None
        self.server: Any = None
        self.transport: Any = None
        self.metrics: Any = None
        self.started = False

    def start(self) -> None:
        """Connect to the broker, start watching guests, then serve the compute RPC API."""
        from ha_guest import rpc
        from ha_guest.compute.endpoint import RPC_WORKERS
        from ha_guest.compute.manager import ComputeEndpoint, ComputeManager

        self.transport = rpc.get_rpc_transport(self.conf)
        controller = rpc.ControllerAPI(self.conf, self.transport)
        self.manager = ComputeManager(self.conf, controller)
        self.server = rpc.get_rpc_server(self.transport, rpc.compute_server_target(self.conf),
                                         [ComputeEndpoint(self.manager)])
        self.manager.start()
        self.server.start(override_pool_size=RPC_WORKERS)
        self.started = True
        self._serve_metrics()
        # What start made (modules, channels, monitors) lives as long as the process:
        # keep it out of the full collections that would otherwise stall the loop.
        gc.freeze()

    def _serve_metrics(self) -> None:
        """Start the [metrics] endpoint if one is configured (prometheus_client only imported then)."""
        if self.conf.metrics.listen_port is None:
            return
        from ha_guest.metrics.compute import ComputeCollector
        from ha_guest.metrics.server import serve

        self.metrics = serve(self.conf, [ComputeCollector(self.manager)])

    def stop(self, graceful: bool = True) -> None:
        """Stop serving RPC and metrics, flush the reporter and save the state file, close the transport."""
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        if self.server is not None and self.started:
            self.server.stop()
            self.server.wait()
        self.server = None
        if self.manager is not None:
            # A manager that failed to start has nothing to flush.
            self.manager.stop(flush_timeout=2.0 if graceful and self.started else 0.0)
            self.manager = None
        if self.transport is not None:
            self.transport.cleanup()
            self.transport = None

    def wait(self) -> None:
        """Nothing to wait for: stop() returns once everything has stopped."""

    def reset(self) -> None:
        """Apply reloaded options: the mutable one ([compute] state_report_interval_s) is read where it is used."""


def main(argv: Optional[List[str]] = None) -> int:
    """Run the compute agent until SIGTERM or SIGINT (SIGHUP reloads); return the exit status."""
    conf = prepare_conf(argv, PROG)  # refuses eventlet: before anything imports oslo.messaging
    from ha_guest.cmd.launcher import Launcher, log_start

    log_start(conf, PROG)
    return Launcher(conf, ComputeService(conf), PROG).run()


if __name__ == "__main__":
    sys.exit(main())
