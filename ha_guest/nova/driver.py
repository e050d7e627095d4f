"""LibvirtDriver subclass that adds the ha_guest virtio-serial channel and its features to the domain XML."""

from __future__ import annotations

from typing import Any

from nova import exception
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from ha_guest.nova import channel, features_xml, specs
from ha_guest.protocol.constants import CHANNEL_NAME

LOG = logging.getLogger(__name__)

#: Nova calls the guest agent hook for these virt types only; we check again in
#: case a later Nova calls it for others.
SUPPORTED_VIRT_TYPES = ("qemu", "kvm")


def _has_channel(guest: vconfig.LibvirtConfigGuest, target_name: str) -> bool:
    """Tell whether the guest config already has a virtio channel with this target name."""
    return any(
        isinstance(device, vconfig.LibvirtConfigGuestChannel) and device.target_name == target_name
        for device in guest.devices
    )


class HAGuestFeaturesMetadata(vconfig.LibvirtConfigObject):
    """``<ha_guest:features heartbeat=".." server_group_messaging=".."/>`` in the domain's ``<metadata>``.

    The compute agent reads it to learn what the instance may use on its
    channel; libvirt keeps it (keyed by our namespace) and live migration
    copies it with the rest of the XML.
    """

    def __init__(self, features: specs.Features) -> None:
        super().__init__(root_name=features_xml.ELEMENT, ns_prefix=features_xml.NAMESPACE_PREFIX,
                         ns_uri=features_xml.NAMESPACE_URI)
        self.features = features

    def format_dom(self) -> Any:
        meta = super().format_dom()
        for name, value in features_xml.attributes(self.features.heartbeat,
                                                   self.features.server_group_messaging).items():
            meta.set(name, value)
        return meta


def _has_features_metadata(guest: vconfig.LibvirtConfigGuest) -> bool:
    """Tell whether the guest config already carries our features element."""
    return any(isinstance(item, HAGuestFeaturesMetadata) for item in guest.metadata)


class HAGuestLibvirtDriver(libvirt_driver.LibvirtDriver):
    """The libvirt driver plus one ha_guest channel (and its features metadata) for instances that ask for it.

    Nova builds the guest config from scratch on boot, rebuild, evacuate, resize,
    revert, hard reboot and power on, always through ``_set_qemu_guest_agent``;
    live migration copies the source XML, so the channel travels with it.
    """

    def _set_qemu_guest_agent(self, guest: Any, flavor: Any, instance: Any, image_meta: Any) -> None:
        super()._set_qemu_guest_agent(guest, flavor, instance, image_meta)
        self._add_ha_guest_channel(guest, flavor, instance)

    def _add_ha_guest_channel(self, guest: Any, flavor: Any, instance: Any) -> None:
        """Add our channel and features metadata when the flavor or image asks for them, never twice."""
        if guest.virt_type not in SUPPORTED_VIRT_TYPES:
            return
        extra_specs = flavor.extra_specs or {}
        image_properties = specs.image_properties_from_system_metadata(instance.system_metadata or {})
        try:
            wanted = channel.channel_spec(instance.name, extra_specs, image_properties)
            features = specs.features(extra_specs, image_properties)
        except (specs.InvalidSpec, channel.InvalidInstanceName) as exc:
            # InvalidInput aborts the build without rescheduling: every host would fail alike.
            raise exception.InvalidInput(reason=str(exc)) from exc
        if wanted is None:
            return
        if not _has_features_metadata(guest):
            # Nova's own <nova:instance> is already there; ours follows it.
            guest.metadata.append(HAGuestFeaturesMetadata(features))
        if _has_channel(guest, wanted.target_name):
            LOG.debug("ha_guest channel %s already in the guest config", CHANNEL_NAME, instance=instance)
            return
        device = vconfig.LibvirtConfigGuestChannel()
        device.type = wanted.type
        device.target_name = wanted.target_name
        device.source_path = wanted.source_path
        guest.add_device(device)
        LOG.debug("ha_guest channel %s added at %s (heartbeat %s, server group messaging %s)",
                  wanted.target_name, wanted.source_path, features.heartbeat, features.server_group_messaging,
                  instance=instance)
