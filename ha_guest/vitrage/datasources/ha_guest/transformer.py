"""Vitrage transformer of the ha_guest datasource: one alarm vertex per fault, ``on`` its nova.instance or nova.host."""

from __future__ import annotations

from typing import Any

from oslo_log import log
from vitrage.common.constants import DatasourceProperties as DSProps
from vitrage.common.constants import EdgeLabel, EntityCategory
from vitrage.common.constants import VertexProperties as VProps
from vitrage.datasources import transformer_base as tbase
from vitrage.datasources.alarm_transformer_base import AlarmTransformerBase
from vitrage.datasources.nova.host import NOVA_HOST_DATASOURCE
from vitrage.datasources.nova.instance import NOVA_INSTANCE_DATASOURCE
from vitrage.graph import utils as graph_utils

from ha_guest.vitrage.datasources.ha_guest import HA_GUEST_DATASOURCE
from ha_guest.vitrage.datasources.ha_guest import properties as props
from ha_guest.vitrage.datasources.ha_guest.properties import AlarmField, FaultField, FaultState

LOG = log.getLogger(__name__)

# Fault fields shown on the alarm vertex (vitrage alarm show / the UI): all the
# alarm carries but its state, which the vertex holds as an alarm state already.
_METADATA_FIELDS = tuple(field for field in props.FAULT_FIELDS if field != FaultField.STATE)


class HAGuestTransformer(AlarmTransformerBase):
    """Alarm vertex keyed by (resource, incident); a nova.instance (nova.host) placeholder neighbour it merges into."""

    def _create_snapshot_entity_vertex(self, entity_event: dict[str, Any]) -> Any:
        return self._create_vertex(entity_event)

    def _create_update_entity_vertex(self, entity_event: dict[str, Any]) -> Any:
        return self._create_vertex(entity_event)

    def _create_vertex(self, entity_event: dict[str, Any]) -> Any:
        metadata = {name: entity_event[name] for name in _METADATA_FIELDS if name in entity_event}
        metadata[VProps.NAME] = entity_event[AlarmField.NAME]
        metadata[VProps.SEVERITY] = entity_event[AlarmField.SEVERITY]
        _, alarm_id = props.alarm_key(entity_event)
        return graph_utils.create_vertex(
            self._create_entity_key(entity_event),
            vitrage_category=EntityCategory.ALARM,
            vitrage_type=entity_event[DSProps.ENTITY_TYPE],
            vitrage_sample_timestamp=entity_event[DSProps.SAMPLE_DATE],
            entity_id=alarm_id,
            entity_state=self._get_alarm_state(entity_event),
            update_timestamp=entity_event[AlarmField.UPDATE_TIMESTAMP],
            metadata=metadata,
        )

    def _create_snapshot_neighbors(self, entity_event: dict[str, Any]) -> list:
        return self._create_instance_neighbor(entity_event)

    def _create_update_neighbors(self, entity_event: dict[str, Any]) -> list:
        return self._create_instance_neighbor(entity_event)

    def _create_instance_neighbor(self, entity_event: dict[str, Any]) -> list:
        # The placeholder's key is the resource's own key, so it merges with the real vertex.
        if props.is_host_alarm(entity_event):
            resource_id, resource_type = entity_event[FaultField.HOST], NOVA_HOST_DATASOURCE
        else:
            resource_id, resource_type = entity_event[FaultField.INSTANCE_UUID], NOVA_INSTANCE_DATASOURCE
        return [
            self._create_neighbor(
                entity_event,
                resource_id,
                resource_type,
                EdgeLabel.ON,
                neighbor_category=EntityCategory.RESOURCE,
            )
        ]

    def _create_entity_key(self, entity_event: dict[str, Any]) -> str:
        resource_id, alarm_id = props.alarm_key(entity_event)
        return str(tbase.build_key((EntityCategory.ALARM, HA_GUEST_DATASOURCE, resource_id, alarm_id)))

    def _ok_status(self, entity_event: dict[str, Any]) -> bool:
        return bool(entity_event) and entity_event.get(FaultField.STATE) == FaultState.CLEARED

    def get_vitrage_type(self) -> str:
        return HA_GUEST_DATASOURCE
