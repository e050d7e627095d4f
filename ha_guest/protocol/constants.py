"""Names and paths shared by the host and the guest side."""

from __future__ import annotations

#: virtio-serial port name (libvirt channel target name).
CHANNEL_NAME = "org.openstack.ha_guest.0"

#: Host socket path pattern; Nova uses the same folder for the QEMU guest agent.
HOST_SOCKET_PATTERN = "/var/lib/libvirt/qemu/" + CHANNEL_NAME + ".{instance_name}.sock"

#: Where udev (or the guest agent) links the port inside the guest.
GUEST_DEVICE_PATH = "/dev/virtio-ports/" + CHANNEL_NAME

#: Where the guest finds port names when nothing created the link.
GUEST_SYSFS_PORTS = "/sys/class/virtio-ports"

#: Applications carried by the base layer.
APP_BASE = "base"
APP_HEARTBEAT = "heartbeat"
APP_SGM = "sgm"


def host_socket_path(instance_name: str) -> str:
    """Return the host socket path of an instance (libvirt domain name)."""
    return HOST_SOCKET_PATTERN.format(instance_name=instance_name)
