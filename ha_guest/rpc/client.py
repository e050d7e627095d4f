"""The base of ha_guest's RPC client classes: one target, one version cap, one timeout."""

from __future__ import annotations

from typing import Any, Optional

import oslo_messaging
from oslo_config import cfg

from ha_guest.conf import default as default_conf
from ha_guest.conf import rpc as rpc_conf
from ha_guest.rpc import transport as rpc_transport


class RPCClientBase:
    """Owns an oslo.messaging RPCClient; subclasses add one method per RPC method."""

    #: Newest API version this client knows; the [rpc] *_version_cap option may lower it.
    VERSION = '1.0'

    def __init__(self, conf: cfg.ConfigOpts, transport: Optional[oslo_messaging.Transport],
                 target: oslo_messaging.Target, version_cap: Optional[str], timeout: Optional[float],
                 retry: Optional[int] = None) -> None:
        """``retry``: connection attempts per message (None: oslo's default, for ever; 0: no retry)."""
        self.conf = conf
        self._own_transport = transport is None
        self.transport = transport if transport is not None else rpc_transport.get_rpc_transport(conf)
        self.version_cap = version_cap or self.VERSION
        self.timeout = timeout if timeout is not None else conf.rpc.call_timeout_s
        self._client = oslo_messaging.get_rpc_client(
            self.transport, target, version_cap=self.version_cap, timeout=self.timeout, retry=retry)

    @staticmethod
    def _register(conf: cfg.ConfigOpts) -> None:
        # Callers such as the Vitrage datasource bring their own ConfigOpts.
        default_conf.register_opts(conf)
        rpc_conf.register_opts(conf)

    def can_send_version(self, version: str) -> bool:
        """Return whether ``version`` is within this client's version cap."""
        return bool(self._client.can_send_version(version))

    def _prepare(self, version: str, **kwargs: Any) -> Any:
        # oslo.messaging raises RPCVersionCapError itself when version > cap. A None
        # timeout or retry means "the client's default" here, not oslo's "forever".
        kwargs = {name: value for name, value in kwargs.items() if value is not None}
        return self._client.prepare(version=version, **kwargs)

    def close(self) -> None:
        """Release the transport if this client created it."""
        if self._own_transport:
            self.transport.cleanup()
