"""Console-script entry points of the host services."""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:
    from oslo_config import cfg

_prepared = False


def prepare_process() -> None:
    """Refuse eventlet and select oslo.service's threading backend.

    Call before anything imports oslo.messaging. Libraries such as futurist
    import eventlet whenever it happens to be installed; like nova-compute,
    our services make that import fail so they run on native threads only.
    Only our own processes do this: library code (the Vitrage datasource,
    the Nova driver) never changes the host process's import machinery.
    """
    global _prepared
    if _prepared:
        return
    if "eventlet" in sys.modules and sys.modules["eventlet"] is not None:
        raise RuntimeError("eventlet was imported before ha_guest could refuse it")
    sys.modules["eventlet"] = None  # type: ignore[assignment]  # import now raises ImportError
    from oslo_service import backend

    backend.init_backend(backend.BackendType.THREADING)
    _prepared = True


def prepare_conf(argv: Optional[Sequence[str]], prog: str) -> "cfg.ConfigOpts":
    """Register every option on cfg.CONF, parse the command line and files, set up logging.

    Our services' [DEFAULT] control_exchange defaults to ha_guest's own
    exchange (ha_guest.rpc.transport.set_defaults), on this ConfigOpts only.
    """
    prepare_process()
    # A reload asked for while the service is still starting has nothing to reload yet: it
    # must not kill it (SIGHUP's default action). The launcher serves SIGHUP from start on.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from oslo_config import cfg
    from oslo_log import log as logging

    from ha_guest import conf as ha_conf
    from ha_guest.cmd.launcher import version_string
    from ha_guest.rpc import transport

    conf = cfg.CONF
    logging.register_options(conf)
    ha_conf.register_all(conf)
    # oslo.messaging registers its options when it builds a transport: register them
    # now so that the start log lists them too (transport_url masked, rabbit options).
    from oslo_messaging import opts as messaging_opts

    for group, opts in messaging_opts.list_opts():
        conf.register_opts(opts, group=group if group != "DEFAULT" else None)
    transport.set_defaults(conf)
    conf(list(sys.argv[1:] if argv is None else argv), project="ha_guest", prog=prog, version=version_string())
    logging.setup(conf, "ha_guest")
    return conf


def sample_config_defaults() -> None:
    """Show our services' control_exchange default in the sample config (oslo-config-generator only).

    Entry point oslo.config.opts.defaults "oslo.messaging": the generator runs it
    in its own process before it lists oslo.messaging's options. Never called by
    a service (they set the default per ConfigOpts: ha_guest.rpc.transport.set_defaults).
    """
    import oslo_messaging

    from ha_guest.rpc import transport

    oslo_messaging.set_transport_defaults(transport.CONTROL_EXCHANGE)
