"""ha-guest-compute: the compute agent (one per compute node)."""

from __future__ import annotations

import gc
import signal
import sys
import threading
from typing import List, Optional

from ha_guest.cmd import prepare_process

PROG = "ha-guest-compute"


def main(argv: Optional[List[str]] = None) -> int:
    """Run the compute agent until SIGTERM or SIGINT; return the exit status."""
    prepare_process()  # before anything imports oslo.messaging

    from oslo_config import cfg
    from oslo_log import log as logging

    from ha_guest import conf as ha_conf
    from ha_guest import rpc
    from ha_guest.compute.endpoint import RPC_WORKERS
    from ha_guest.compute.manager import ComputeEndpoint, ComputeManager

    conf = cfg.CONF
    logging.register_options(conf)
    ha_conf.register_all(conf)
    conf(sys.argv[1:] if argv is None else argv, project="ha_guest", prog=PROG)
    logging.setup(conf, "ha_guest")
    log = logging.getLogger(PROG)

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    transport = rpc.get_rpc_transport(conf)
    controller = rpc.ControllerAPI(conf, transport)
    manager = ComputeManager(conf, controller)
    server = rpc.get_rpc_server(transport, rpc.compute_server_target(conf), [ComputeEndpoint(manager)])
    try:
        manager.start()
    except Exception as exc:  # noqa: BLE001 - say why and exit, e.g. a discovery driver that cannot load
        log.error("cannot start: %s", exc)
        manager.stop(flush_timeout=0.0)
        transport.cleanup()
        return 1
    server.start(override_pool_size=RPC_WORKERS)
    # What start made (modules, channels, monitors) lives as long as the process:
    # keep it out of the full collections that would otherwise stall the loop.
    gc.freeze()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        server.wait()
        manager.stop(flush_timeout=2.0)
        transport.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
