"""Nova's versioned notifications, emitted by Nova's own code on the test broker.

Instance events go through ``nova.compute.utils.notify_about_instance_action``
(InstanceActionPayload built from a Nova Instance object), server group
events through ServerGroupPayload/ServerGroupNotification, and both leave
through ``nova.rpc``'s notifier with the settings a deployment needs
(``[notifications] notification_format = versioned``,
``[oslo_messaging_notifications] driver = messagingv2``): the bytes on the
wire are what Nova 34 sends. Importing this module needs Nova (tox -e nova).
"""

from __future__ import annotations

import threading
import uuid as uuid_mod
from typing import Optional

# isort: off
import tests.nova  # noqa: F401 - native threading mode and Nova's objects, before anything else of Nova
# isort: on
import nova.conf
import oslo_messaging
from nova import context as nova_context
from nova import objects, rpc
from nova.compute import power_state as nova_power_state
from nova.compute import utils as compute_utils
from nova.network import model as network_model
from nova.notifications.objects import base as notification_base
from nova.notifications.objects import server_group as sg_notification
from nova.objects import fields
from nova.tests.unit import fake_instance

from ha_guest.testing import messaging
from tests.messaging import unique

#: This process's versioned-notifications topic (exchange "nova"); the controllers under test consume it.
TOPIC = unique('versioned_notifications')
#: Nova's exchange.
EXCHANGE = 'nova'
_POWER = {'pending': nova_power_state.NOSTATE, 'running': nova_power_state.RUNNING,
          'paused': nova_power_state.PAUSED, 'shutdown': nova_power_state.SHUTDOWN,
          'crashed': nova_power_state.CRASHED, 'suspended': nova_power_state.SUSPENDED}
_lock = threading.Lock()
_ready = False


def _init() -> None:
    global _ready
    with _lock:
        if _ready:
            return
        conf = nova.conf.CONF
        conf([], project='nova')
        # A transport on the test broker registers transport_url and the rabbit driver's options.
        oslo_messaging.get_notification_transport(conf, url=messaging.transport_url()).cleanup()
        conf.set_override('transport_url', messaging.transport_url())
        # Every Nova service sets its exchange to "nova" (nova.config.parse_args); here on Nova's own
        # configuration only, so the other transports of the test process keep theirs.
        conf.set_override('control_exchange', EXCHANGE)
        # The same broker options as the services under test: RabbitMQ refuses to see one exchange
        # ("nova") declared with two auto_delete values.
        for name, value in messaging.RABBIT_OPTIONS.items():
            conf.set_override(name, value, group='oslo_messaging_rabbit')
        conf.set_override('notification_format', 'versioned', group='notifications')
        conf.set_override('versioned_notifications_topics', [TOPIC], group='notifications')
        conf.set_override('driver', ['messagingv2'], group='oslo_messaging_notifications')
        rpc.init(conf)
        _ready = True


def _instance(ctxt: nova_context.RequestContext, instance: str, host: str, vm_state: str,
              power_state: str) -> objects.Instance:
    inst = fake_instance.fake_instance_obj(ctxt, uuid=instance, host=host, node=host, vm_state=vm_state,
                                           power_state=_POWER[power_state], task_state=None)
    # What a real Instance has loaded when the compute manager notifies; no database here.
    inst.info_cache = objects.InstanceInfoCache(network_info=network_model.NetworkInfo())
    inst.keypairs = objects.KeyPairList(objects=[])
    inst.tags = objects.TagList(objects=[])
    inst.system_metadata = {}
    inst.metadata = {}
    return inst


def emit(event_type: str, instance: str, host: str, *, vm_state: str = 'active', power_state: str = 'running',
         group: Optional[str] = None, members: Optional[list[str]] = None) -> None:
    """Emit ``event_type`` about ``instance`` the way Nova does (server_group.*: about ``group``)."""
    _init()
    ctxt = nova_context.get_admin_context()
    obj, _, rest = event_type.partition('.')
    if obj == 'server_group':
        instance_group = objects.InstanceGroup(
            uuid=group or str(uuid_mod.uuid4()), name='sgm-test', user_id='fake-user', project_id='fake-project',
            members=list(members or [instance]), hosts=[host], policy='anti-affinity', rules={})
        instance_group.policies = ['anti-affinity']
        notification = sg_notification.ServerGroupNotification(
            priority=fields.NotificationPriority.INFO,
            publisher=notification_base.NotificationPublisher(host=host, source=fields.NotificationSource.API),
            event_type=notification_base.EventType(object='server_group', action=rest),
            payload=sg_notification.ServerGroupPayload(instance_group))
        notification.emit(ctxt)
        return
    action, _, phase = rest.partition('.')
    compute_utils.notify_about_instance_action(
        ctxt, _instance(ctxt, instance, host, vm_state, power_state), host, action=action, phase=phase or None,
        bdms=objects.BlockDeviceMappingList(objects=[]))
