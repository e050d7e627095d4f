"""Client of the controller RPC API, used by compute agents and the Vitrage datasource."""

from __future__ import annotations

from typing import Any, Optional

import oslo_messaging
from oslo_config import cfg

from ha_guest.rpc import payloads, sgm_payloads
from ha_guest.rpc import transport as rpc_transport
from ha_guest.rpc.client import RPCClientBase
from ha_guest.rpc.transport import Context, context_dict

#: Version of the controller's RPC endpoint (and newest version ControllerAPI sends).
CONTROLLER_API_VERSION = '1.4'
#: Reports are published "mandatory": while no controller's queue is bound (e.g. just after the
#: broker came back, before the controllers re-declared it) the broker returns the message and
#: the call fails at once, instead of the report being dropped and the call waiting out its timeout.
_MANDATORY = oslo_messaging.TransportOptions(at_least_once=True)


def controller_server_target(conf: cfg.ConfigOpts, host: Optional[str] = None) -> oslo_messaging.Target:
    """Return the target a controller's RPC server listens on."""
    return oslo_messaging.Target(topic=conf.rpc.controller_topic, server=host or conf.host)


class ControllerAPI(RPCClientBase):
    """Client of the controllers (topic [rpc] controller_topic); any controller may answer.

    API version history:

    * 1.0 - report_fault, report_recovery, report_exit, report_state, list_faults
    * 1.1 - sgm_broadcast, sgm_status (server group messaging)
    * 1.2 - report_batch; list_faults' host filter
    * 1.3 - list_host_faults, list_unregistered (the watchers: silent compute agents, unregistered guests)
    * 1.4 - list_cleared_faults, list_agents (ha-guest-status)
    """

    VERSION = CONTROLLER_API_VERSION

    def __init__(self, conf: cfg.ConfigOpts, transport: Optional[oslo_messaging.Transport] = None, *,
                 server: Optional[str] = None, timeout: Optional[float] = None,
                 transport_url: Optional[str] = None, retry: Optional[int] = None) -> None:
        """Build the client; ``server`` pins one controller (tests, diagnostics).

        Without ``transport`` the client opens one of its own on ``transport_url``
        (default: [DEFAULT] transport_url) and closes it in close().
        """
        self._register(conf)
        self._server = server
        self._timeout = timeout
        if transport is None:
            transport = rpc_transport.get_rpc_transport(conf, transport_url)
            own = True
        else:
            own = False
        target = oslo_messaging.Target(topic=conf.rpc.controller_topic, server=server, version=self.VERSION)
        super().__init__(conf, transport, target, conf.rpc.controller_version_cap, timeout, retry)
        self._own_transport = own
        self._url = transport_url

    def renewed(self) -> 'ControllerAPI':
        """Return a like client on a new transport of its own, its broker hosts rotated by one.

        For a caller that gave up on a call stuck on a hung broker node: the
        new transport's connections start at the next node of the URL.
        """
        url = rpc_transport.rotated_url(self.conf, self._url)
        return ControllerAPI(self.conf, server=self._server, timeout=self._timeout, transport_url=url)

    def report_fault(self, ctxt: Context, fault: dict[str, Any], timeout: Optional[float] = None) -> dict[str, bool]:
        """Report a fault; return {"duplicate": True} if a controller knew it already."""
        cctxt = self._prepare('1.0', timeout=timeout, transport_options=_MANDATORY)
        return cctxt.call(context_dict(ctxt), 'report_fault', fault=payloads.fault(fault))

    def report_recovery(self, ctxt: Context, recovery: dict[str, Any], timeout: Optional[float] = None) -> None:
        """Report that the guest of a fault answers healthy again (clears that incident)."""
        cctxt = self._prepare('1.0', timeout=timeout, transport_options=_MANDATORY)
        cctxt.call(context_dict(ctxt), 'report_recovery', recovery=payloads.recovery(recovery))

    def report_exit(self, ctxt: Context, exit: dict[str, Any],  # noqa: A002 - the contract's name
                    timeout: Optional[float] = None) -> None:
        """Report that a guest ended monitoring (clears its faults, never raises one)."""
        cctxt = self._prepare('1.0', timeout=timeout, transport_options=_MANDATORY)
        cctxt.call(context_dict(ctxt), 'report_exit', exit=payloads.exit_report(exit))

    def report_state(self, ctxt: Context, report: dict[str, Any]) -> None:
        """Send a compute agent's state report (cast: no reply)."""
        cctxt = self._prepare('1.0', transport_options=_MANDATORY)
        cctxt.cast(context_dict(ctxt), 'report_state', report=payloads.state_report(report))

    def report_batch(self, ctxt: Context, reports: list[dict[str, Any]],
                     timeout: Optional[float] = None) -> dict[str, list[dict[str, Any]]]:
        """Report faults, recoveries and exits in one call, applied in order.

        ``reports``: [{"type": "fault"|"recovery"|"exit", "payload": <1.0 payload>}].
        Answers {"results": [{"duplicate": bool} | {"error": text}, ...]}, one per item.
        """
        cctxt = self._prepare('1.2', timeout=timeout, transport_options=_MANDATORY)
        answer = cctxt.call(context_dict(ctxt), 'report_batch', reports=payloads.batch(reports))
        return payloads.batch_answer(answer, len(reports))

    def list_faults(self, ctxt: Context, instance_uuid: Optional[str] = None,
                    host: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the active faults (of one instance, of one host if given), each with "state": "active"."""
        if host is None:
            cctxt = self._prepare('1.0')
            return cctxt.call(context_dict(ctxt), 'list_faults', instance_uuid=instance_uuid)
        cctxt = self._prepare('1.2')
        return cctxt.call(context_dict(ctxt), 'list_faults', instance_uuid=instance_uuid, host=host)

    def list_host_faults(self, ctxt: Context, host: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the open host faults (compute agents silent for [controller] agent_down_time_s)."""
        cctxt = self._prepare('1.3')
        return cctxt.call(context_dict(ctxt), 'list_host_faults', host=host)

    def list_unregistered(self, ctxt: Context, host: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the instances whose guest has not registered: since, overdue, alarm (None unless announced)."""
        cctxt = self._prepare('1.3')
        return cctxt.call(context_dict(ctxt), 'list_unregistered', host=host)

    def list_cleared_faults(self, ctxt: Context, instance_uuid: Optional[str] = None,
                            host: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the recently cleared faults (of one instance, of one host), each with "state": "cleared"."""
        cctxt = self._prepare('1.4')
        return cctxt.call(context_dict(ctxt), 'list_cleared_faults', instance_uuid=instance_uuid, host=host)

    def list_agents(self, ctxt: Context, host: Optional[str] = None) -> dict[str, Any]:
        """Return {"controller": who answered, "agents": every compute agent heard from (of ``host``)}."""
        cctxt = self._prepare('1.4')
        return cctxt.call(context_dict(ctxt), 'list_agents', host=host)

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
