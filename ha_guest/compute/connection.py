"""The client end of one UNIX socket that keeps reconnecting, with backoff, until closed.

GuestChannel builds on it: QEMU (or the emulator) listens on an instance's
channel socket, the compute agent connects, and whenever the connection
drops or the socket is not there yet, it tries again after a delay that
doubles from ``reconnect_min_s`` to ``reconnect_max_s`` (plus jitter, so
that a thousand channels do not retry in step).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Dict, Optional

from ha_guest.compute.log_gate import LogGate

_JITTER = 0.1


class ReconnectingConnection(asyncio.BufferedProtocol):
    """Connection management of a channel; the subclass speaks the protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, path: str, reconnect_min_s: float,
                 reconnect_max_s: float, counters: Dict[str, int], log: LogGate) -> None:
        self.loop = loop
        self.name = name
        self.path = path
        self.transport: Optional[asyncio.Transport] = None
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.counters = counters
        self._log = log
        self._closing = False
        self._connecting: Optional[asyncio.Task[Any]] = None
        self._timer: Optional[asyncio.TimerHandle] = None  # reconnect, or the subclass's (never both)
        self._backoff = reconnect_min_s

    @property
    def connected(self) -> bool:
        """Whether a connection to the socket is open."""
        return self.transport is not None

    def start(self) -> None:
        """Connect now (and keep reconnecting until close())."""
        self._closing = False
        self._connect_now()

    def set_path(self, path: str) -> None:
        """Use another socket path (the domain restarted); reconnects at once."""
        if path == self.path:
            return
        self.path = path
        if self.transport is not None:
            self.transport.abort()  # connection_lost reconnects to the new path
        else:
            self._cancel_timer()
            self._connect_now()

    def close(self) -> None:
        """Disconnect for good."""
        self._closing = True
        self._cancel_timer()
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        if self.transport is not None:
            self.transport.abort()
            self.transport = None

    def connected_again(self) -> None:
        """The peer answered on this connection: the next reconnection starts from the shortest delay."""
        self._backoff = self.reconnect_min_s

    def _connect_now(self) -> None:
        if self._closing or self._connecting is not None or self.transport is not None:
            return
        self._connecting = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            await self.loop.create_unix_connection(lambda: self, self.path)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means: try again later
            self.counters["connect_failures"] += 1
            self._log.log(logging.DEBUG, "%s: cannot connect to %s: %s", self.name, self.path, exc)
            self._schedule_reconnect()
        finally:
            self._connecting = None

    def _schedule_reconnect(self) -> None:
        if self._closing:
            return
        delay = self._backoff * (1.0 + random.uniform(0.0, _JITTER))
        self._backoff = min(self._backoff * 2.0, self.reconnect_max_s)
        self._cancel_timer()
        self._timer = self.loop.call_later(delay, self._connect_now)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
