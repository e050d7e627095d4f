"""Nova 34's versioned notifications without Nova: payload builders and a publisher (demo, benchmark, tests).

The dicts are what Nova's own notification objects give on the wire
(``payload.obj_to_primitive()`` after ``emit()`` reset its changes):
InstanceActionPayload 1.9 (InstanceCreatePayload 1.13 for instance.create.*,
InstanceActionRebuildPayload 1.10 for instance.rebuild.*,
InstanceActionRescuePayload 1.4 for instance.rescue.*) and ServerGroupPayload
1.1. tests/sgm (the nova tox env) checks them against Nova's objects, so they
can't drift. NovaNotifier sends them as Nova does: oslo.messaging driver
messagingv2, priority info, exchange "nova", publisher_id "<source>:<host>".
No import of nova here.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid as uuid_mod
from collections.abc import Sequence
from typing import Any, Optional

import oslo_messaging
from oslo_config import cfg

from ha_guest.testing import messaging as ha_messaging

#: Nova's default topic and exchange of versioned notifications.
TOPIC = 'versioned_notifications'
EXCHANGE = 'nova'
#: Nova's NotificationSource values that publish the events SGM forwards.
SOURCE_COMPUTE = 'nova-compute'
SOURCE_API = 'nova-api'


@dataclasses.dataclass
class NovaInstance:
    """The instance fields an instance notification carries; defaults as a fresh boot leaves them."""

    uuid: str = dataclasses.field(default_factory=lambda: str(uuid_mod.uuid4()))
    host: Optional[str] = 'cmp-1'
    node: Optional[str] = None  # None: same as host
    vm_state: str = 'active'
    power_state: str = 'running'
    task_state: Optional[str] = None
    display_name: str = 'vm'
    user_id: str = 'demo'
    project_id: str = 'demo'
    reservation_id: str = 'r-00000001'
    image_uuid: str = '155d900f-4e14-4e4c-a73d-069cbf4541e6'
    availability_zone: Optional[str] = 'nova'
    flavor_id: str = '42'
    flavor_name: str = 'm1.ha'
    extra_specs: dict[str, str] = dataclasses.field(default_factory=dict)
    created_at: Optional[datetime.datetime] = None
    launched_at: Optional[datetime.datetime] = None
    #: instance.name, i.e. Nova's instance_name_template applied to the instance's id.
    name: str = 'instance-00000001'


def _isotime(value: Optional[datetime.datetime]) -> Optional[str]:
    # Nova's DateTimeField: UTC, whole seconds, "Z".
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc)
    return value.strftime('%Y-%m-%dT%H:%M:%SZ')


def _object(name: str, version: str, data: dict[str, Any]) -> dict[str, Any]:
    return {'nova_object.name': name, 'nova_object.namespace': 'nova', 'nova_object.version': version,
            'nova_object.data': data}


def _flavor(instance: NovaInstance) -> dict[str, Any]:
    return _object('FlavorPayload', '1.4', {
        'flavorid': instance.flavor_id, 'memory_mb': 512, 'vcpus': 1, 'root_gb': 1, 'ephemeral_gb': 0,
        'name': instance.flavor_name, 'swap': 0, 'rxtx_factor': 1.0, 'vcpu_weight': 0, 'disabled': False,
        'is_public': True, 'extra_specs': dict(instance.extra_specs), 'projects': [], 'description': None,
    })


#: Events whose notification Nova builds from the instance's block device mappings (a list, empty without
#: volumes); the others show none ([notifications] bdms_in_notifications is off by default).
_WITH_BDMS = ('instance.create.', 'instance.delete.', 'instance.rebuild.')


def instance_payload(instance: NovaInstance, event_type: str, request_id: Optional[str] = None) -> dict[str, Any]:
    """Return the payload Nova sends with ``event_type`` about ``instance`` (no fault, no volumes, no ports)."""
    data: dict[str, Any] = {
        'fault': None, 'request_id': request_id, 'uuid': instance.uuid, 'user_id': instance.user_id,
        'tenant_id': instance.project_id, 'reservation_id': instance.reservation_id,
        'display_name': instance.display_name, 'display_description': '', 'host_name': instance.display_name,
        'host': instance.host, 'node': instance.node if instance.node is not None else instance.host,
        'os_type': None, 'architecture': None, 'availability_zone': instance.availability_zone,
        'flavor': _flavor(instance), 'image_uuid': instance.image_uuid, 'key_name': None, 'kernel_id': '',
        'ramdisk_id': '', 'created_at': _isotime(instance.created_at), 'launched_at': _isotime(instance.launched_at),
        'terminated_at': None, 'deleted_at': None, 'updated_at': None, 'state': instance.vm_state,
        'power_state': instance.power_state, 'task_state': instance.task_state, 'progress': 0, 'ip_addresses': [],
        'block_devices': [] if event_type.startswith(_WITH_BDMS) else None, 'metadata': {}, 'locked': False,
        'auto_disk_config': 'MANUAL',
        'action_initiator_user': instance.user_id, 'action_initiator_project': instance.project_id,
        'locked_reason': None, 'shares': None,
    }
    if event_type.startswith('instance.create.'):
        data.update(keypairs=[], tags=[], trusted_image_certificates=None, instance_name=instance.name)
        return _object('InstanceCreatePayload', '1.13', data)
    if event_type.startswith('instance.rebuild.'):
        data.update(trusted_image_certificates=None)
        return _object('InstanceActionRebuildPayload', '1.10', data)
    if event_type.startswith('instance.rescue.'):
        data.update(rescue_image_ref=instance.image_uuid)
        return _object('InstanceActionRescuePayload', '1.4', data)
    return _object('InstanceActionPayload', '1.9', data)


def server_group_payload(group_uuid: str, members: Sequence[str], *, name: str = 'group',
                         policy: str = 'anti-affinity', user_id: str = 'demo', project_id: str = 'demo',
                         hosts: Optional[list[str]] = None) -> dict[str, Any]:
    """Return the payload of server_group.create / add_member / delete (``members``: every member now)."""
    return _object('ServerGroupPayload', '1.1', {
        'uuid': group_uuid, 'name': name, 'user_id': user_id, 'project_id': project_id, 'policies': [policy],
        'members': list(members), 'hosts': hosts, 'policy': policy, 'rules': {},
    })


def publisher_id(host: str, source: str = SOURCE_COMPUTE) -> str:
    """Return Nova's publisher_id: "<source>:<host>"."""
    return '%s:%s' % (source, host)


class NovaNotifier:
    """Publishes notifications as Nova does, on a transport of its own whose default exchange is Nova's."""

    def __init__(self, transport_url: str, topics: Sequence[str] = (TOPIC,), exchange: str = EXCHANGE,
                 transport: Optional[oslo_messaging.Transport] = None) -> None:
        """``transport``: publish on this one instead (then on its exchange; oslo.messaging's in-process
        fake driver needs it, since its queues belong to one transport)."""
        # The exchange of a notification is its transport's control_exchange: Nova sets "nova".
        self.conf: cfg.ConfigOpts = ha_messaging.make_conf(transport_url, 'nova-stand-in',
                                                           {'DEFAULT': {'control_exchange': exchange}})
        self._own_transport = transport is None
        self.transport = transport or oslo_messaging.get_notification_transport(self.conf, url=transport_url)
        self._notifier = oslo_messaging.Notifier(self.transport, driver='messagingv2', topics=list(topics))

    def emit(self, event_type: str, payload: dict[str, Any], publisher: str) -> None:
        """Send one info notification."""
        self._notifier.prepare(publisher_id=publisher).info({}, event_type, payload)

    def instance_event(self, instance: NovaInstance, event_type: str) -> None:
        """Send ``event_type`` about ``instance`` from its compute host."""
        self.emit(event_type, instance_payload(instance, event_type), publisher_id(instance.host or 'cmp-1'))

    def add_member(self, group_uuid: str, members: Sequence[str], api_host: str = 'api-1') -> None:
        """Send server_group.add_member (``members``: the group's members after the addition)."""
        self.emit('server_group.add_member', server_group_payload(group_uuid, members),
                  publisher_id(api_host, SOURCE_API))

    def delete_group(self, group_uuid: str, members: Sequence[str] = (), api_host: str = 'api-1') -> None:
        """Send server_group.delete."""
        self.emit('server_group.delete', server_group_payload(group_uuid, members),
                  publisher_id(api_host, SOURCE_API))

    def close(self) -> None:
        """Release the transport (if it made it)."""
        if self._own_transport:
            self.transport.cleanup()
