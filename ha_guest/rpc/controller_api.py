"""Client of the controller RPC API, used by compute agents and the Vitrage datasource."""

from __future__ import annotations

from typing import Any, Optional

import oslo_messaging
from oslo_config import cfg

from ha_guest.rpc import payloads, sgm_payloads
from ha_guest.rpc.client import RPCClientBase
from ha_guest.rpc.transport import Context, context_dict

#: Version of the controller's RPC endpoint (and newest version ControllerAPI sends).
CONTROLLER_API_VERSION = '1.1'


def controller_server_target(conf: cfg.ConfigOpts, host: Optional[str] = None) -> oslo_messaging.Target:
    """Return the target a controller's RPC server listens on."""
    return oslo_messaging.Target(topic=conf.rpc.controller_topic, server=host or conf.host)


class ControllerAPI(RPCClientBase):
    """Client of the controllers (topic [rpc] controller_topic); any controller may answer.

    API version history:

    * 1.0 - report_fault, report_recovery, report_exit, report_state, list_faults
    * 1.1 - sgm_broadcast, sgm_status (server group messaging)
    """

    VERSION = CONTROLLER_API_VERSION

    def __init__(self, conf: cfg.ConfigOpts, transport: Optional[oslo_messaging.Transport] = None, *,
                 server: Optional[str] = None, timeout: Optional[float] = None) -> None:
        """Build the client; ``server`` pins one controller (tests, diagnostics)."""
        self._register(conf)
        target = oslo_messaging.Target(topic=conf.rpc.controller_topic, server=server, version=self.VERSION)
        super().__init__(conf, transport, target, conf.rpc.controller_version_cap, timeout)

    def report_fault(self, ctxt: Context, fault: dict[str, Any]) -> dict[str, bool]:
        """Report a fault; return {"duplicate": True} if a controller knew it already."""
        cctxt = self._prepare('1.0')
        return cctxt.call(context_dict(ctxt), 'report_fault', fault=payloads.fault(fault))

    def report_recovery(self, ctxt: Context, recovery: dict[str, Any]) -> None:
        """Report that the guest of a fault answers healthy again (clears that incident)."""
        cctxt = self._prepare('1.0')
        cctxt.call(context_dict(ctxt), 'report_recovery', recovery=payloads.recovery(recovery))

    def report_exit(self, ctxt: Context, exit: dict[str, Any]) -> None:  # noqa: A002 - the contract's name
        """Report that a guest ended monitoring (clears its faults, never raises one)."""
        cctxt = self._prepare('1.0')
        cctxt.call(context_dict(ctxt), 'report_exit', exit=payloads.exit_report(exit))

    def report_state(self, ctxt: Context, report: dict[str, Any]) -> None:
        """Send a compute agent's state report (cast: no reply)."""
        cctxt = self._prepare('1.0')
        cctxt.cast(context_dict(ctxt), 'report_state', report=payloads.state_report(report))

    def list_faults(self, ctxt: Context, instance_uuid: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the active faults (of one instance if given), each with "state": "active"."""
        cctxt = self._prepare('1.0')
        return cctxt.call(context_dict(ctxt), 'list_faults', instance_uuid=instance_uuid)

    def sgm_broadcast(self, ctxt: Context, broadcasts: list[dict[str, Any]], timeout: Optional[float] = None,
                      retry: Optional[int] = None) -> None:
        """Hand a batch of guest broadcasts to a controller; returns once it has routed them (a call).

        A call, not a cast: the controller's deliveries of one batch are on their
        way before the next batch leaves, so one sender's broadcasts keep their
        order across the controllers' threads, and a controller that does not
        answer is noticed (``timeout``).
        """
        cctxt = self._prepare('1.1', timeout=timeout, retry=retry)
        cctxt.call(context_dict(ctxt), 'sgm_broadcast',
                   broadcasts=[sgm_payloads.broadcast(item) for item in broadcasts])

    def sgm_status(self, ctxt: Context, instance_uuid: str, timeout: Optional[float] = None,
                   retry: Optional[int] = None) -> dict[str, Any]:
        """Return the Nova state of every member of the instance's group: {"members": [...]} or {"nack": ...}."""
        cctxt = self._prepare('1.1', timeout=timeout, retry=retry)
        answer = cctxt.call(context_dict(ctxt), 'sgm_status',
                            instance_uuid=sgm_payloads.canonical_uuid(instance_uuid, 'instance_uuid'))
        return sgm_payloads.status_answer(answer)
