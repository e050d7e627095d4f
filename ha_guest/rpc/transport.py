"""oslo.messaging transports, servers and request contexts as ha_guest uses them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import oslo_messaging
from oslo_config import cfg

#: Modules whose exceptions RPC clients re-raise by class instead of as RemoteError.
ALLOWED_REMOTE_EXMODS = ['ha_guest.rpc.errors']

Context = Optional[Any]

#: [DEFAULT] control_exchange of ha_guest's services: our RPC topics and the
#: notifications we send live on an exchange of our own, not on the "openstack"
#: exchange every service shares (a broker refuses to see one exchange declared
#: with different options, and our topics do not mix with other services').
CONTROL_EXCHANGE = 'ha_guest'


def set_defaults(conf: cfg.ConfigOpts) -> None:
    """Make ``conf``'s [DEFAULT] control_exchange default to CONTROL_EXCHANGE.

    Per ConfigOpts: oslo_messaging.set_transport_defaults would change the default
    of every ConfigOpts in the process (Nova's too, where both share one).
    """
    if 'control_exchange' not in conf:
        from oslo_messaging import opts as messaging_opts  # registers a copy of oslo.messaging's option

        conf.register_opts([opt for group, opts in messaging_opts.list_opts() if group is None
                            for opt in opts if opt.dest == 'control_exchange'])
    conf.set_default('control_exchange', CONTROL_EXCHANGE)


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
