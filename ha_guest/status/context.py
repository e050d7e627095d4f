"""The status command's view of the deployment: the services' config, the broker, bounded RPC calls."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from oslo_config import cfg

from ha_guest.status import broker
from ha_guest.status.errors import BrokerUnreachable, NoAnswer, StatusError, VersionTooOld

T = TypeVar('T')
#: A call that oslo.messaging has not ended this long after its own timeout is abandoned (exit).
_GRACE_S = 5.0
#: Longest wait a call may be given (--timeout).
MAX_TIMEOUT_S = 120.0


def load_conf(config_files: Sequence[str], config_dirs: Sequence[str],
              conf: cfg.ConfigOpts | None = None) -> cfg.ConfigOpts:
    """Return a ConfigOpts with every ha_guest and oslo.messaging option, parsed as our services parse it.

    Without --config-file, oslo.config looks where it looks for the services
    (project "ha_guest": ~/.ha_guest/, ~/, /etc/ha_guest/, /etc/ for ha_guest.conf).
    Default ``conf``: cfg.CONF, as in the services (oslo.messaging's calls read
    groups it registers on cfg.CONF only, such as oslo_messaging_tracing).
    """
    from oslo_messaging import opts as messaging_opts

    from ha_guest import conf as ha_conf
    from ha_guest.cmd.launcher import version_string
    from ha_guest.conf import opts as ha_opts
    from ha_guest.rpc import transport

    conf = cfg.CONF if conf is None else conf
    ha_conf.register_all(conf)
    for group, opts in messaging_opts.list_opts():
        conf.register_opts(opts, group=group if group != 'DEFAULT' else None)
    transport.set_defaults(conf)
    args: list[str] = []
    for path in config_files:
        if not os.path.isfile(path):
            raise StatusError('config file %s not found' % path)
        args += ['--config-file', path]
    for path in config_dirs:
        args += ['--config-dir', path]
    try:
        conf(args, project='ha_guest', prog='ha-guest-status', version=version_string(), use_env=False)
        # oslo.config converts values when read: read ours now, so a bad one fails here, named.
        for group, opts in ha_opts.list_opts():
            name = group.name if isinstance(group, cfg.OptGroup) else group
            for opt in opts:
                try:
                    getattr(conf if name in (None, 'DEFAULT') else conf[name], opt.dest)
                except cfg.NoSuchOptError:
                    pass  # registered later by its user (keystoneauth's plugin options)
    except (cfg.Error, ValueError) as exc:
        raise StatusError('config: %s' % exc) from None
    return conf


class Status:
    """Lazily built clients of one command run; every call bounded by ``timeout``."""

    def __init__(self, conf: cfg.ConfigOpts, timeout: float) -> None:
        self.conf = conf
        self.timeout = timeout
        self._transport: Any = None
        self._controller: Any = None
        self._compute: Any = None

    # -- clients ------------------------------------------------------------------------------

    def check_broker(self) -> None:
        """Fail with BrokerUnreachable unless some host of [DEFAULT] transport_url lets us in."""
        results = broker.probe(self.conf, timeout=min(self.timeout, 5.0))
        if not any(result.ok for result in results):
            raise BrokerUnreachable('broker %s: %s' % (broker.masked(self.conf),
                                                       '; '.join(r.describe() for r in results)))

    @property
    def transport(self) -> Any:
        if self._transport is None:
            self.check_broker()
            from ha_guest.rpc import transport

            self._transport = transport.get_rpc_transport(self.conf)
        return self._transport

    @property
    def controller(self) -> Any:
        """The ControllerAPI client (any controller answers; [rpc] controller_version_cap honoured)."""
        if self._controller is None:
            from ha_guest.rpc.controller_api import ControllerAPI

            # retry=1: a broker that goes away mid-call ends the call instead of reconnecting for ever.
            self._controller = ControllerAPI(self.conf, self.transport, timeout=self.timeout, retry=1)
        return self._controller

    @property
    def compute(self) -> Any:
        """The ComputeAPI client ([rpc] compute_version_cap honoured)."""
        if self._compute is None:
            from ha_guest.rpc.compute_api import ComputeAPI

            self._compute = ComputeAPI(self.conf, self.transport, timeout=self.timeout, retry=1)
        return self._compute

    def close(self) -> None:
        """Release the transport."""
        if self._transport is not None:
            self._transport.cleanup()
            self._transport = None

    # -- calls --------------------------------------------------------------------------------

    def require(self, client: Any, version: str, what: str, api: str, option: str) -> None:
        """Refuse clearly when ``client``'s version cap is below ``version``."""
        if not client.can_send_version(version):
            raise VersionTooOld('%s needs %s %s; [rpc] %s is %s in this config (raise it once every %s '
                                'runs a release with API %s)' % (what, api, version, option, client.version_cap,
                                                                 'controller' if 'controller' in option
                                                                 else 'compute agent', version))

    def call(self, what: str, func: Callable[..., T], *args: Any, version: str = '1.0',
             who: str = '', **kwargs: Any) -> T:
        """Run one RPC call; turn a timeout, a refused version or a lost broker into a StatusError.

        A watchdog ends the process should oslo.messaging itself not return
        (a hung broker node can hold a call far past its timeout).
        """
        import oslo_messaging

        silent = '%s did not answer' % who if who else 'no controller answered'
        watchdog = threading.Timer(self.timeout + _GRACE_S, _abandon, ['%s: %s within %.0f s (the call did not '
                                                                       'end)' % (what, silent, self.timeout)])
        watchdog.daemon = True
        watchdog.start()
        try:
            return func(*args, **kwargs)
        except oslo_messaging.MessagingTimeout:
            raise NoAnswer('%s: %s within %.0f s on topic %s at %s' % (
                what, silent, self.timeout, self._topic(who), broker.masked(self.conf))) from None
        except oslo_messaging.RPCVersionCapError as exc:
            raise VersionTooOld('%s: %s' % (what, exc)) from None
        except oslo_messaging.RemoteError as exc:
            if exc.exc_type == 'UnsupportedVersion':
                raise VersionTooOld('%s needs API %s; the %s that answered runs an older release (%s)' % (
                    what, version, 'compute agent' if 'agent' in who else 'controller', exc.value)) from None
            raise StatusError('%s: %s: %s' % (what, exc.exc_type, exc.value)) from None
        except oslo_messaging.MessageDeliveryFailure as exc:
            raise BrokerUnreachable('%s: the broker did not take the call (%s)' % (what, exc)) from None
        finally:
            watchdog.cancel()

    def _topic(self, who: str) -> str:
        return self.conf.rpc.compute_topic if 'agent' in who else self.conf.rpc.controller_topic


def _abandon(message: str) -> None:
    sys.stderr.write('ERROR: %s\n' % message)
    sys.stderr.flush()
    os._exit(NoAnswer.exit_code)
