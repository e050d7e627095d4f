"""ha_guest.testing.nova_notifications builds exactly what Nova 34's notification objects put on the wire."""

from __future__ import annotations

import datetime
import uuid

import testtools
from nova import context as nova_context
from nova import objects
from nova.network import model as network_model
from nova.notifications.objects import base as notification_base
from nova.notifications.objects import instance as instance_notification
from nova.notifications.objects import server_group as sg_notification
from nova.objects import fields

from ha_guest.controller import nova_notifications as parsing
from ha_guest.testing import nova_notifications as ours
from tests.sgm import nova_emit

CREATED = datetime.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=datetime.timezone.utc)


def _nova_instance(instance: ours.NovaInstance) -> objects.Instance:
    """Return the Nova Instance object whose notifications should equal ours for ``instance``."""
    flavor = objects.Flavor(
        flavorid=instance.flavor_id, name=instance.flavor_name, memory_mb=512, vcpus=1, root_gb=1, ephemeral_gb=0,
        swap=0, rxtx_factor=1.0, vcpu_weight=0, disabled=False, is_public=True,
        extra_specs=dict(instance.extra_specs), description=None, projects=[])
    power = fields.InstancePowerState.index(instance.power_state)
    return objects.Instance(
        id=1, uuid=instance.uuid, user_id=instance.user_id, project_id=instance.project_id,
        reservation_id=instance.reservation_id, display_name=instance.display_name, display_description='',
        hostname=instance.display_name, host=instance.host, node=instance.node or instance.host, os_type=None,
        architecture=None, availability_zone=instance.availability_zone, image_ref=instance.image_uuid,
        key_name=None, kernel_id='', ramdisk_id='', created_at=instance.created_at,
        launched_at=instance.launched_at, terminated_at=None, deleted_at=None, updated_at=None,
        vm_state=instance.vm_state, power_state=power, task_state=instance.task_state, progress=0, metadata={},
        locked=False, auto_disk_config=False, system_metadata={}, flavor=flavor,
        info_cache=objects.InstanceInfoCache(network_info=network_model.NetworkInfo([])),
        keypairs=objects.KeyPairList(objects=[]), tags=objects.TagList(objects=[]), trusted_certs=None)


def _wire(payload: notification_base.NotificationPayloadBase) -> dict:
    # What NotificationBase.emit() sends: changes reset, then the primitive.
    payload.obj_reset_changes(recursive=True)
    return payload.obj_to_primitive()


class TestShape(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        nova_emit._init()  # populate_schema() needs nova.rpc's notifier
        self.instance = ours.NovaInstance(host='cmp-7', vm_state='stopped', power_state='shutdown',
                                          display_name='standby', created_at=CREATED, launched_at=CREATED,
                                          extra_specs={'ha_guest:server_group_messaging': 'true'})
        self.context = nova_context.RequestContext(user_id=self.instance.user_id,
                                                   project_id=self.instance.project_id, request_id='req-1',
                                                   is_admin=True)

    def check(self, event_type: str, payload_class: type, *args: object) -> None:
        nova = _wire(payload_class(self.context, _nova_instance(self.instance), None, *args))
        self.assertEqual(nova, ours.instance_payload(self.instance, event_type, request_id='req-1'))
        # And the controller reads from it what Nova meant.
        update = parsing.parse(event_type, nova)
        self.assertEqual((self.instance.uuid, 'stopped', 'shutdown', 'cmp-7'),
                         (update['member'], update['state'], update['power_state'], update['host']))

    def test_instance_action_payload(self) -> None:
        self.check('instance.power_off.end', instance_notification.InstanceActionPayload, None)

    def test_instance_create_payload(self) -> None:
        self.check('instance.create.end', instance_notification.InstanceCreatePayload, [])

    def test_rebuild_payload(self) -> None:
        self.check('instance.rebuild.end', instance_notification.InstanceActionRebuildPayload, [])

    def test_rescue_payload(self) -> None:
        self.check('instance.rescue.end', instance_notification.InstanceActionRescuePayload,
                   self.instance.image_uuid)

    def test_server_group_payload(self) -> None:
        group, members = str(uuid.uuid4()), [str(uuid.uuid4()), str(uuid.uuid4())]
        instance_group = objects.InstanceGroup(uuid=group, name='group', user_id='demo', project_id='demo',
                                               members=members, policy='anti-affinity', rules={})
        instance_group.policies = ['anti-affinity']  # what loading it from the database sets
        nova = _wire(sg_notification.ServerGroupPayload(instance_group))
        self.assertEqual(nova, ours.server_group_payload(group, members))
        self.assertEqual({'kind': 'add_member', 'event': 'server_group.add_member', 'group': group,
                          'members': members, 'at': 5.0}, parsing.parse('server_group.add_member', nova, 5.0))

    def test_publisher_id_and_event_types(self) -> None:
        for source, host in ((fields.NotificationSource.COMPUTE, 'cmp-1'), (fields.NotificationSource.API, 'api')):
            publisher = notification_base.NotificationPublisher(host=host, source=source)
            self.assertEqual('%s:%s' % (publisher.source, publisher.host), ours.publisher_id(host, source))
        self.assertEqual((ours.SOURCE_COMPUTE, ours.SOURCE_API),
                         (fields.NotificationSource.COMPUTE, fields.NotificationSource.API))
        # Every event the controller forwards is one Nova can send: <object>.<action>[.<phase>] of its enums.
        for event_type in parsing.EVENT_TYPES:
            obj, action, *phase = event_type.split('.')
            self.assertIn(action, fields.NotificationAction.ALL, event_type)
            if phase:
                self.assertIn(phase[0], fields.NotificationPhase.ALL, event_type)
            event = notification_base.EventType(object=obj, action=action, phase=phase[0] if phase else None)
            self.assertEqual(event_type, event.to_notification_event_type_field())
