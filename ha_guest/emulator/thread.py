"""A MultiChannelEmulator on its own event loop thread, for synchronous tests and the demo."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ha_guest.emulator.channel import DEFAULT_QUEUE_LIMIT, ChannelStats
from ha_guest.emulator.multi import MultiChannelEmulator

_T = TypeVar('_T')


class EmulatorThread:
    """Runs a MultiChannelEmulator in a daemon thread; every method is thread-safe and bounded."""

    def __init__(self, host_dir: str | os.PathLike[str], guest_dir: str | os.PathLike[str],
                 *, queue_limit: int = DEFAULT_QUEUE_LIMIT, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.emulator = MultiChannelEmulator(host_dir, guest_dir, queue_limit=queue_limit)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name='ha-guest-channel-emulator', daemon=True)

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> EmulatorThread:
        """Start the loop thread."""
        self._thread.start()
        return self

    def add(self, instance_uuid: str) -> tuple[str, str]:
        """Create the channel of an instance; return its (host, guest) socket paths."""
        self._call(self.emulator.add, instance_uuid)
        return self.emulator.host_socket_path(instance_uuid), self.emulator.guest_socket_path(instance_uuid)

    def remove(self, instance_uuid: str) -> None:
        """Stop the channel of an instance and unlink its sockets."""
        self._call(self.emulator.remove, instance_uuid)

    def stats(self, instance_uuid: str) -> ChannelStats:
        """Return a snapshot of one channel's counters, taken on the loop thread."""
        return self._call(self._stats, instance_uuid)

    def instances(self) -> list[str]:
        """Return the instance UUIDs that have a channel."""
        return self._call(self._instances)

    def stop(self) -> None:
        """Remove every channel and end the loop thread; safe to call twice."""
        if self._thread.is_alive():
            try:
                self._call(self.emulator.stop)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(self.timeout)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())

    def _call(self, func: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        if not self._thread.is_alive():
            raise RuntimeError('the emulator thread is not running')
        if threading.current_thread() is self._thread:
            raise RuntimeError('blocking call from the emulator thread itself would deadlock')

        async def call() -> _T:
            return await func(*args)

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            if future.done():
                raise  # the call itself raised TimeoutError
            future.cancel()
            raise TimeoutError('emulator call %s timed out after %ss' % (func.__name__, self.timeout)) from None

    async def _stats(self, instance_uuid: str) -> ChannelStats:
        return self.emulator.get(instance_uuid).stats()

    async def _instances(self) -> list[str]:
        return self.emulator.instances()
