"""Hypervisor channel emulator: stands in for QEMU's virtio-serial chardev socket in tests and the demo."""

from ha_guest.emulator.channel import DEFAULT_QUEUE_LIMIT, ChannelEmulator, ChannelStats
from ha_guest.emulator.multi import MultiChannelEmulator
from ha_guest.emulator.thread import EmulatorThread

__all__ = ['DEFAULT_QUEUE_LIMIT', 'ChannelEmulator', 'ChannelStats', 'EmulatorThread', 'MultiChannelEmulator']
