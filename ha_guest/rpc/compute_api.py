"""Client of the compute agents' RPC API, used by the controllers."""

from __future__ import annotations

from typing import Any, Optional

import oslo_messaging
from oslo_config import cfg

from ha_guest.rpc import sgm_payloads
from ha_guest.rpc.client import RPCClientBase
from ha_guest.rpc.transport import Context, context_dict

#: Version of the compute agent's RPC endpoint (and newest version ComputeAPI sends).
COMPUTE_API_VERSION = '1.2'


def compute_server_target(conf: cfg.ConfigOpts, host: Optional[str] = None) -> oslo_messaging.Target:
    """Return the target a compute agent's RPC server listens on (server = [DEFAULT] host)."""
    return oslo_messaging.Target(topic=conf.rpc.compute_topic, server=host or conf.host)


class ComputeAPI(RPCClientBase):
    """Client of the compute agents (topic [rpc] compute_topic, one server per host).

    API version history:

    * 1.0 - request_state_report
    * 1.1 - sgm_deliver, sgm_notify, sgm_nack (server group messaging, cast to one host)
    * 1.2 - instance_stats (ha-guest-status: one host's watched instances, a call)
    """

    VERSION = COMPUTE_API_VERSION

    def __init__(self, conf: cfg.ConfigOpts, transport: Optional[oslo_messaging.Transport] = None, *,
                 timeout: Optional[float] = None, retry: Optional[int] = None) -> None:
        self._register(conf)
        target = oslo_messaging.Target(topic=conf.rpc.compute_topic, version=self.VERSION)
        super().__init__(conf, transport, target, conf.rpc.compute_version_cap, timeout, retry)

    def request_state_report(self, ctxt: Context, host: Optional[str] = None) -> None:
        """Ask every compute agent (fanout cast), or the one of ``host``, for a state report now."""
        cctxt = self._prepare('1.0', fanout=True) if host is None else self._prepare('1.0', server=host)
        cctxt.cast(context_dict(ctxt), 'request_state_report')

    def instance_stats(self, ctxt: Context, host: str, instance_uuid: Optional[str] = None,
                       timeout: Optional[float] = None, retry: Optional[int] = None) -> dict[str, Any]:
        """Ask the compute agent of ``host`` for its watched instances (one if given), a call.

        Answers {"host", "at", "agent": {...}, "instances": [...], "truncated": bool}.
        """
        cctxt = self._prepare('1.2', server=host, timeout=timeout, retry=retry)
        return cctxt.call(context_dict(ctxt), 'instance_stats', instance_uuid=instance_uuid)

    def sgm_deliver(self, ctxt: Context, host: str, deliveries: list[dict[str, Any]],
                    retry: Optional[int] = None) -> None:
        """Hand broadcasts to the compute agent of ``host`` for its recipients (one cast)."""
        cctxt = self._prepare('1.1', server=host, retry=retry)
        cctxt.cast(context_dict(ctxt), 'sgm_deliver',
                   deliveries=[sgm_payloads.delivery(item) for item in deliveries])

    def sgm_notify(self, ctxt: Context, host: str, notifications: list[dict[str, Any]],
                   retry: Optional[int] = None) -> None:
        """Hand peer state changes to the compute agent of ``host`` for its recipients (one cast)."""
        cctxt = self._prepare('1.1', server=host, retry=retry)
        cctxt.cast(context_dict(ctxt), 'sgm_notify',
                   notifications=[sgm_payloads.notification(item) for item in notifications])

    def sgm_nack(self, ctxt: Context, host: str, nacks: list[dict[str, Any]], retry: Optional[int] = None) -> None:
        """Tell the compute agent of ``host`` that broadcasts of its guests were refused (one cast)."""
        cctxt = self._prepare('1.1', server=host, retry=retry)
        cctxt.cast(context_dict(ctxt), 'sgm_nack', nacks=[sgm_payloads.nack(item) for item in nacks])
