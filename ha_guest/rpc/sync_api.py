"""Client of the controllers' peer-sync API: fanout casts that keep their registries in step."""

from __future__ import annotations

from typing import Any, Optional

import oslo_messaging
from oslo_config import cfg

from ha_guest.rpc.client import RPCClientBase

#: Version of the controllers' peer-sync endpoint.
CONTROLLER_SYNC_API_VERSION = '1.2'


def sync_server_target(conf: cfg.ConfigOpts, host: Optional[str] = None) -> oslo_messaging.Target:
    """Return the target a controller's peer-sync server listens on."""
    return oslo_messaging.Target(topic=conf.rpc.controller_sync_topic, server=host or conf.host)


class ControllerSyncAPI(RPCClientBase):
    """Fanout client to every controller (the sender included: receivers skip their own ``origin``).

    API version history:

    * 1.0 - sync_fault, sync_clear, sync_request, sync_faults
    * 1.1 - sync_members (server group messaging: what one controller learned from Nova's notifications)
    * 1.2 - sync_watch (the watchers' beat: compute agents seen, unregistered instances, the leader's alarms)
    """

    VERSION = CONTROLLER_SYNC_API_VERSION

    def __init__(self, conf: cfg.ConfigOpts, origin: str,
                 transport: Optional[oslo_messaging.Transport] = None) -> None:
        """``origin`` identifies the sending controller process among its peers."""
        self._register(conf)
        self.origin = origin
        target = oslo_messaging.Target(topic=conf.rpc.controller_sync_topic, fanout=True, version=self.VERSION)
        super().__init__(conf, transport, target, conf.rpc.controller_sync_version_cap, None)

    def _cast(self, method: str, version: str = '1.0', retry: Optional[int] = None, **kwargs: Any) -> None:
        self._prepare(version, retry=retry).cast({}, method, origin=self.origin, **kwargs)

    def sync_fault(self, fault: dict[str, Any]) -> None:
        """Tell the peers about a fault this controller raised."""
        self._cast('sync_fault', fault=fault)

    def sync_clear(self, instance_uuid: str, incident_id: Optional[str], cleared: dict[str, Any],
                   notify: bool) -> None:
        """Tell the peers a fault ended (incident_id None: every fault of the instance).

        ``notify``: this controller did not hold the fault, so a peer that
        does must tell its sinks that it was cleared.
        """
        self._cast('sync_clear', instance_uuid=instance_uuid, incident_id=incident_id, cleared=cleared,
                   notify=notify)

    def sync_request(self) -> None:
        """Ask every peer to send its active faults (sync_faults)."""
        self._cast('sync_request')

    def sync_faults(self, faults: list[dict[str, Any]]) -> None:
        """Send a batch of this controller's active faults to the peers."""
        self._cast('sync_faults', faults=faults)

    def sync_members(self, updates: list[dict[str, Any]], retry: Optional[int] = None) -> None:
        """Tell the peers what this controller learned from Nova's notifications (member and group updates).

        ``retry`` bounds reconnection attempts while the broker is unreachable.
        """
        self._cast('sync_members', '1.1', retry=retry, updates=updates)

    def sync_watch(self, beat: dict[str, Any], retry: Optional[int] = None) -> None:
        """Send this controller's watcher beat (ha_guest.controller.watchers) to the peers."""
        self._cast('sync_watch', '1.2', retry=retry, beat=beat)
