"""The "masakari" fault sink: hand the fault to Masakari as a VM notification (``ha_guest:recovery=masakari``)."""

from __future__ import annotations

from typing import Any

from openstack import exceptions as sdk_exceptions
from oslo_log import log as logging

from ha_guest.nova import specs
from ha_guest.sinks.recovery import ActionSink, AlreadyDone, describe_error, iso_utc

LOG = logging.getLogger(__name__)

#: Masakari's notification type for an instance failure.
NOTIFICATION_TYPE = 'VM'
#: The one event masakari-engine recovers an instance for (masakari/engine/instance_events.py: LIFECYCLE with
#: STOPPED_FAILED, or IO_ERROR with IO_ERROR_REPORT); any other pair is stored and IGNORED. A guest that
#: stopped answering its heartbeat is, for Masakari, an instance that failed: it stops and starts it again.
EVENT = 'LIFECYCLE'
VIR_DOMAIN_EVENT = 'STOPPED_FAILED'


def vm_notification(fault: dict[str, Any]) -> dict[str, Any]:
    """Return the create_notification attributes for a fault (Masakari's schema allows no other payload keys)."""
    return {
        'type': NOTIFICATION_TYPE,
        # Masakari looks this name up among the hosts of its failover segments: the compute host's name.
        'hostname': fault['host'],
        'generated_time': iso_utc(float(fault['detected_at'])),
        'payload': {'event': EVENT, 'instance_uuid': fault['instance_uuid'], 'vir_domain_event': VIR_DOMAIN_EVENT},
    }


class MasakariSink(ActionSink):
    """Creates a Masakari VM notification through openstacksdk's instance_ha proxy; Masakari recovers."""

    name = 'masakari'
    actions = {specs.RECOVERY_MASAKARI: 'a VM notification to Masakari'}

    def instance_ha(self) -> Any:
        """Return the connection's instance-ha (Masakari) proxy."""
        with self._proxy_lock:
            return self.connection.instance_ha

    def _act(self, action: str, fault: dict[str, Any]) -> None:
        # Masakari answers 409 for a duplicate (same payload within its detection interval): an earlier try
        # (a redelivered intent) got through. A 409 for a host in maintenance, 404/400 for a host without a
        # segment: reported as failed with its message.
        try:
            self.instance_ha().create_notification(**vm_notification(fault))
        except sdk_exceptions.ConflictException as exc:
            if 'duplicate' not in ('%s %s' % (exc.message, exc.details)).lower():
                raise
            raise AlreadyDone('Masakari has this notification already (HTTP 409: %s)'
                              % (exc.details or exc.message)) from None

    def _warm_up(self) -> None:
        # A token, the catalog, Nova's version document (for the policy lookup) and Masakari's endpoint.
        for service, warm in (('Nova', lambda: self.compute().get_endpoint_data()),
                              ('Masakari', lambda: self.instance_ha().get_endpoint())):
            try:
                warm()
            except Exception as exc:
                LOG.warning('%s sink: %s not reachable yet (%s); the first fault will try again', self.name,
                            service, describe_error(exc, self.timeouts))
