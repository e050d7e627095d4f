"""One ChannelEmulator per instance, with sockets named ``<instance-uuid>.sock``."""

from __future__ import annotations

import os
import re

from ha_guest.emulator.channel import DEFAULT_QUEUE_LIMIT, ChannelEmulator

# Instance UUIDs in practice; any plain file name is accepted so demos can use
# readable names, but nothing that could escape the directory or hide in it.
_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z')
SUFFIX = '.sock'


class MultiChannelEmulator:
    """Manages the channels of many instances: host sockets in one folder, guest sockets in another."""

    def __init__(self, host_dir: str | os.PathLike[str], guest_dir: str | os.PathLike[str],
                 *, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.host_dir = os.fspath(host_dir)
        self.guest_dir = os.fspath(guest_dir)
        self.queue_limit = queue_limit
        self._channels: dict[str, ChannelEmulator] = {}

    def host_socket_path(self, instance_uuid: str) -> str:
        """Return the host-side socket path of an instance."""
        return os.path.join(self.host_dir, _checked(instance_uuid) + SUFFIX)

    def guest_socket_path(self, instance_uuid: str) -> str:
        """Return the guest-side socket path of an instance."""
        return os.path.join(self.guest_dir, _checked(instance_uuid) + SUFFIX)

    def __contains__(self, instance_uuid: object) -> bool:
        return instance_uuid in self._channels

    def __len__(self) -> int:
        return len(self._channels)

    def instances(self) -> list[str]:
        """Return the instance UUIDs that have a channel, sorted."""
        return sorted(self._channels)

    def get(self, instance_uuid: str) -> ChannelEmulator:
        """Return the channel of an instance; KeyError if it has none."""
        return self._channels[instance_uuid]

    async def add(self, instance_uuid: str) -> ChannelEmulator:
        """Create and start the channel of an instance; ValueError if it exists."""
        if instance_uuid in self._channels:
            raise ValueError('instance %s already has a channel' % instance_uuid)
        os.makedirs(self.host_dir, exist_ok=True)
        os.makedirs(self.guest_dir, exist_ok=True)
        channel = ChannelEmulator(self.host_socket_path(instance_uuid), self.guest_socket_path(instance_uuid),
                                  queue_limit=self.queue_limit)
        # Claim the name before the first await so a concurrent add() fails.
        self._channels[instance_uuid] = channel
        try:
            await channel.start()
        except BaseException:
            del self._channels[instance_uuid]
            raise
        return channel

    async def remove(self, instance_uuid: str) -> None:
        """Stop the channel of an instance and unlink both socket files; KeyError if it has none."""
        channel = self._channels.pop(instance_uuid)
        await channel.stop()

    async def stop(self) -> None:
        """Remove every channel."""
        for instance_uuid in list(self._channels):
            await self.remove(instance_uuid)


def _checked(instance_uuid: str) -> str:
    if not isinstance(instance_uuid, str) or not _NAME.match(instance_uuid):
        raise ValueError('not a usable instance id for a socket file name: %r' % (instance_uuid,))
    return instance_uuid
