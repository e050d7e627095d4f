"""RPC endpoint of the compute agent (ha_guest.rpc.ComputeAPI, topic [rpc] compute_topic, server = host).

Its methods run in oslo.messaging's threads; each only checks the payload
and hands the work to the compute agent's event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

import oslo_messaging

from ha_guest.compute import status_view
from ha_guest.rpc import sgm_payloads
from ha_guest.rpc.compute_api import COMPUTE_API_VERSION
from ha_guest.rpc.errors import InvalidPayload

if TYPE_CHECKING:
    from ha_guest.compute.manager import ComputeManager

#: Threads of the compute agent's RPC server. Its methods only hand work to the
#: event loop, so one is plenty; and only one keeps the deliveries of a queue
#: in the order the broker gave them (a pool would let them overtake each other).
RPC_WORKERS = 1

# Errors the caller must see, which the server need not log with a traceback.
_expected = oslo_messaging.expected_exceptions(InvalidPayload)


class ComputeEndpoint:
    """Serves ComputeAPI: state reports on request, server group messaging deliveries."""

    target = oslo_messaging.Target(version=COMPUTE_API_VERSION)

    def __init__(self, manager: "ComputeManager") -> None:
        self.manager = manager

    @_expected
    def instance_stats(self, ctxt: Any, instance_uuid: Optional[str] = None) -> Dict[str, Any]:
        """This host's watched instances (one if given) for ha-guest-status (API 1.2)."""
        if instance_uuid is not None and not isinstance(instance_uuid, str):
            raise InvalidPayload("instance_uuid must be a string, not %s" % type(instance_uuid).__name__)
        return self.manager.call(status_view.instance_stats, self.manager, instance_uuid, timeout=5.0)

    def request_state_report(self, ctxt: Any) -> None:
        """The controller wants every compute agent's state now."""
        self.manager.request_state_report()

    @_expected
    def sgm_deliver(self, ctxt: Any, deliveries: List[Dict[str, Any]]) -> None:
        """Peers' broadcasts for guests of this host."""
        items = [sgm_payloads.delivery(item) for item in sgm_payloads.batch(deliveries, "deliveries")]
        self.manager.sgm_call("deliver", items)

    @_expected
    def sgm_notify(self, ctxt: Any, notifications: List[Dict[str, Any]]) -> None:
        """Peers' Nova state changes for guests of this host."""
        items = [sgm_payloads.notification(item) for item in sgm_payloads.batch(notifications, "notifications")]
        self.manager.sgm_call("notify", items)

    @_expected
    def sgm_nack(self, ctxt: Any, nacks: List[Dict[str, Any]]) -> None:
        """Broadcasts of guests of this host that a controller refused."""
        items = [sgm_payloads.nack(item) for item in sgm_payloads.batch(nacks, "nacks")]
        self.manager.sgm_call("nack", items)
