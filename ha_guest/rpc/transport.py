"""oslo.messaging transports, servers and request contexts as ha_guest uses them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import oslo_messaging
from oslo_config import cfg

#: Modules whose exceptions RPC clients re-raise by class instead of as RemoteError.
ALLOWED_REMOTE_EXMODS = ['ha_guest.rpc.errors']
#: oslo.messaging's RabbitMQ options as our services default them (a config file still wins).
#: oslo's defaults back reconnection off to 1, 3, 5... s plus kombu_reconnect_delay (1 s) per
#: attempt: a ~7 s broker outage cost ~4-6 s after the broker was back. A steady 1 s (the
#: smallest rabbit_retry_interval allowed) brings our services back within a second.
RABBIT_DEFAULTS: dict[str, Any] = {
    'rabbit_retry_interval': 1,
    'rabbit_retry_backoff': 0,
    'rabbit_interval_max': 1,
    'kombu_reconnect_delay': 0.1,
    # A hung node (SIGSTOP, a frozen VM) is noticed by our consumers after this, not 60 s.
    'heartbeat_timeout_threshold': 15,
}

Context = Optional[Any]


def rotated_url(conf: cfg.ConfigOpts, url: Optional[str] = None) -> str:
    """Return ``url`` (default: [DEFAULT] transport_url) with its broker hosts rotated by one.

    A new transport on it connects to the next node first: the way off a node that hangs.
    """
    parsed = oslo_messaging.TransportURL.parse(conf, url)
    if len(parsed.hosts) > 1:
        parsed.hosts = parsed.hosts[1:] + parsed.hosts[:1]
    return str(parsed)


#: [DEFAULT] control_exchange of ha_guest's services: our RPC topics and the
#: notifications we send live on an exchange of our own, not on the "openstack"
#: exchange every service shares (a broker refuses to see one exchange declared
#: with different options, and our topics do not mix with other services').
CONTROL_EXCHANGE = 'ha_guest'


def set_defaults(conf: cfg.ConfigOpts) -> None:
    """Make ``conf``'s [DEFAULT] control_exchange default to CONTROL_EXCHANGE, its rabbit ones RABBIT_DEFAULTS.

    Per ConfigOpts: oslo_messaging.set_transport_defaults would change the default
    of every ConfigOpts in the process (Nova's too, where both share one).
    """
    if 'control_exchange' not in conf:
        from oslo_messaging import opts as messaging_opts  # registers a copy of oslo.messaging's option

        conf.register_opts([opt for group, opts in messaging_opts.list_opts() if group is None
                            for opt in opts if opt.dest == 'control_exchange'])
    conf.set_default('control_exchange', CONTROL_EXCHANGE)
    _set_rabbit_defaults(conf)


def _set_rabbit_defaults(conf: cfg.ConfigOpts) -> None:
    group = 'oslo_messaging_rabbit'
    if group not in conf or 'rabbit_interval_max' not in conf[group]:
        from oslo_messaging import opts as messaging_opts  # copies of oslo.messaging's options

        conf.register_opts([opt for name, opts in messaging_opts.list_opts() if name == group for opt in opts],
                           group=group)
    for name, value in RABBIT_DEFAULTS.items():
        conf.set_default(name, value, group=group)


def get_rpc_transport(conf: cfg.ConfigOpts, url: Optional[str] = None) -> oslo_messaging.Transport:
    """Return an RPC transport for ``url`` (default: [DEFAULT] transport_url)."""
    return oslo_messaging.get_rpc_transport(conf, url=url, allowed_remote_exmods=ALLOWED_REMOTE_EXMODS)


def get_notification_transport(conf: cfg.ConfigOpts, url: Optional[str] = None) -> oslo_messaging.Transport:
    """Return a notification transport for ``url``.

    Default: [oslo_messaging_notifications] transport_url, else [DEFAULT] transport_url.
    """
    return oslo_messaging.get_notification_transport(conf, url=url)


def get_rpc_server(transport: oslo_messaging.Transport, target: oslo_messaging.Target,
                   endpoints: Sequence[object]) -> oslo_messaging.MessageHandlingServer:
    """Return an RPC server on ``target``; methods run in oslo.messaging's thread pool.

    No executor is named: oslo.messaging's default is the threading executor
    once eventlet is refused (ha_guest.cmd.prepare_process), and naming it warns.
    """
    return oslo_messaging.get_rpc_server(
        transport, target, list(endpoints),
        # Only public endpoint methods are callable; helpers stay behind an underscore.
        access_policy=oslo_messaging.DefaultRPCAccessPolicy,
    )


def context_dict(ctxt: Context) -> dict[str, Any]:
    """Return a request context as the plain dict oslo.messaging sends.

    Callers may pass None, a dict or an oslo.context RequestContext (e.g. the
    Vitrage datasource); our payloads never depend on the context.
    """
    if ctxt is None:
        return {}
    if isinstance(ctxt, Mapping):
        return dict(ctxt)
    to_dict = getattr(ctxt, 'to_dict', None)
    if callable(to_dict):
        return dict(to_dict())
    raise TypeError('an RPC context must be None, a dict or have to_dict(), not %s' % type(ctxt).__name__)
