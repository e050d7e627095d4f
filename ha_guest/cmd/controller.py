"""ha-guest-controller: the fault registry and fault sinks behind the controller RPC API."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any, Optional

from ha_guest.cmd import prepare_process


def main(argv: Optional[list[str]] = None) -> int:
    """Run the controller until SIGTERM or SIGINT; return the exit status."""
    prepare_process()
    # Imported after prepare_process(): they pull in oslo.messaging.
    import pbr.version
    from oslo_config import cfg
    from oslo_log import log as logging

    from ha_guest import conf as ha_conf
    from ha_guest.controller.manager import ControllerManager, SinkLoadError

    conf = cfg.CONF
    logging.register_options(conf)
    ha_conf.register_all(conf)
    conf(sys.argv[1:] if argv is None else argv, project='ha_guest', prog='ha-guest-controller',
         version=pbr.version.VersionInfo('ha_guest').version_string())
    logging.setup(conf, 'ha_guest')
    log = logging.getLogger(__name__)

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log.info('%s received, stopping', signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)

    try:
        manager = ControllerManager(conf)
    except SinkLoadError as exc:
        log.error('%s', exc)
        return 1
    manager.start()
    try:
        stop.wait()
    finally:
        manager.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
