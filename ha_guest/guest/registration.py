"""Heartbeat registration of one session: init, its retries, init_ack and the host's refusals.

The agent owns the channel; this room only decides when to send heartbeat/init
and what the host's answers mean. After each hello_ack (when heartbeat is on
in the agent's configuration) init goes out; without init_ack within
INIT_RETRY_S it is sent again, at most MAX_INIT_RETRIES more times per session.
base/error "not_registered" starts over (the host lost the registration).
base/error "not_enabled" means the instance's flavor has no heartbeat (an
SGM-only instance): no more init in this session, one INFO line, and the next
session tries again, since the host's knowledge may have changed by then.
Nothing here writes to the channel except through the send callable.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Optional

from ha_guest.protocol import errors, heartbeat
from ha_guest.protocol.messages import Error, Message

LOG = logging.getLogger(__name__)

INIT_RETRY_S = 2.0
MAX_INIT_RETRIES = 3

#: Values of agent_status "heartbeat_state".
STATE_OFF = "off"
STATE_NOT_REGISTERED = "not_registered"
STATE_REGISTERED = "registered"
STATE_NOT_ENABLED = "not_enabled"

NOT_ENABLED_LOG = "heartbeat is not enabled for this instance by its flavor; server group messaging only"


class Registration:
    """Registers the guest for heartbeat in each session the agent starts."""

    def __init__(self, send: Callable[[Message], Optional[int]], wanted: bool, interval_ms: int) -> None:
        self._send = send
        #: Whether the agent's configuration asks for heartbeat at all.
        self.wanted = wanted
        self._wanted_interval_ms = interval_ms
        self.registered = False
        self.interval_ms: Optional[int] = None
        self.miss_threshold: Optional[int] = None
        #: The host answered not_enabled in the current session.
        self.not_enabled = False
        self._in_session = False
        self._init_sends = 0
        self._timer: Optional[asyncio.TimerHandle] = None

    @property
    def state(self) -> str:
        """Return one of the STATE_* values for agent_status."""
        if not self.wanted:
            return STATE_OFF
        if self.not_enabled:
            return STATE_NOT_ENABLED
        return STATE_REGISTERED if self.registered else STATE_NOT_REGISTERED

    def start_session(self) -> None:
        """A session was accepted (hello_ack sent): register if wanted."""
        self.end_session()
        self._in_session = True
        if self.wanted:
            self._init_sends = 0
            self._send_init()

    def end_session(self) -> None:
        """The session ended: forget the registration and the host's refusal."""
        self._in_session = False
        self.registered = False
        self.not_enabled = False
        self.cancel()

    def cancel(self) -> None:
        """Stop the init retry timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send_init(self) -> None:
        self.cancel()
        self._init_sends += 1
        if self._send(heartbeat.Init(self._wanted_interval_ms)) is None:
            return
        self._timer = asyncio.get_running_loop().call_later(INIT_RETRY_S, self._init_timeout)

    def _init_timeout(self) -> None:
        self._timer = None
        if self.registered or self.not_enabled or not self._in_session:
            return
        if self._init_sends > MAX_INIT_RETRIES:
            LOG.warning("host did not acknowledge init after %d tries", self._init_sends)
            return
        LOG.debug("no init_ack within %gs, sending init again", INIT_RETRY_S)
        self._send_init()

    def on_init_ack(self, ack: heartbeat.InitAck) -> None:
        """The host registered us (again): take its interval and threshold."""
        self.cancel()
        changed = not self.registered or (ack.interval_ms, ack.miss_threshold) != (
            self.interval_ms, self.miss_threshold)
        self.registered = True
        self.not_enabled = False
        self.interval_ms = ack.interval_ms
        self.miss_threshold = ack.miss_threshold
        if changed:
            LOG.info("registered: interval %d ms, miss threshold %d", ack.interval_ms, ack.miss_threshold)

    def on_exit_ack(self) -> None:
        """Monitoring ended on our request."""
        self.registered = False

    def on_error(self, message: Error) -> None:
        """Act on a host error that concerns the registration; ignore the others."""
        if not self._in_session:
            return
        if message.code == errors.NOT_ENABLED:
            # Only heartbeat frames are refused this way (SGM gets nack not_enabled).
            if not self.not_enabled:
                LOG.info(NOT_ENABLED_LOG)
            self.not_enabled = True
            self.registered = False
            self.cancel()
        elif message.code == errors.NOT_REGISTERED and self.wanted:
            # The host lost our registration (e.g. it restarted its monitor).
            self.registered = False
            self.not_enabled = False
            self._init_sends = 0
            self._send_init()
