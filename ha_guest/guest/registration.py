"""Heartbeat registration of one session: init, its retries, init_ack, the host's refusals, the watchdog.

The agent owns the channel; this room only decides when to send heartbeat/init
and what the host's answers mean. After each hello_ack (when heartbeat is on
in the agent's configuration) init goes out; without init_ack it is sent again
after INIT_RETRY_S, then after a delay that doubles up to MAX_RETRY_S, for as
long as the session lasts (one WARNING per session after MAX_INIT_RETRIES).
base/error "not_registered" starts over (the host lost the registration);
"unexpected_message" about our init means the host has not accepted our
hello_ack: we ask for a hello (the agent answers it with hello_ack and init).
base/error "not_enabled" means the instance's flavor has no heartbeat (an
SGM-only instance): no more init in this session, one INFO line, and the next
session tries again, since the host's knowledge may have changed by then.

The watchdog: while registered, challenges must keep coming. If none arrived
for SILENCE_INTERVALS intervals plus SILENCE_SLACK_S, the host is not watching
us whatever it said: one WARNING (at most one per SILENCE_LOG_S), init again,
and again after growing delays until challenges come back. A re-init never
costs us anything on the host (protocol.rst: it keeps the miss count).
Nothing here writes to the channel except through the send callables.
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
#: The longest wait between two inits while something is wrong.
MAX_RETRY_S = 60.0
#: Challenges missing for this many intervals plus the slack: register again.
SILENCE_INTERVALS = 3
SILENCE_SLACK_S = 1.0
#: At most one silence WARNING per this many seconds (the others at DEBUG).
SILENCE_LOG_S = 600.0

#: Values of agent_status "heartbeat_state".
STATE_OFF = "off"
STATE_NOT_REGISTERED = "not_registered"
STATE_REGISTERED = "registered"
STATE_NOT_ENABLED = "not_enabled"

NOT_ENABLED_LOG = "heartbeat is not enabled for this instance by its flavor; server group messaging only"


class Registration:
    """Registers the guest for heartbeat in each session the agent starts, and keeps it registered."""

    def __init__(self, send: Callable[[Message], Optional[int]], wanted: bool, interval_ms: int,
                 challenges: Callable[[], int] = lambda: 0,
                 request_hello: Optional[Callable[[], None]] = None) -> None:
        self._send = send
        #: Whether the agent's configuration asks for heartbeat at all.
        self.wanted = wanted
        self._wanted_interval_ms = interval_ms
        #: How many challenges the agent has received so far (the watchdog compares).
        self._challenges = challenges
        self._request_hello = request_hello
        self.registered = False
        self.interval_ms: Optional[int] = None
        self.miss_threshold: Optional[int] = None
        #: The host answered not_enabled in the current session.
        self.not_enabled = False
        #: Registered, but challenges stopped coming: re-registering.
        self.silent = False
        #: Inits sent because challenges stopped coming (for agent_status counters).
        self.reregistrations = 0
        self._in_session = False
        self._init_sends = 0
        self._init_seq: Optional[int] = None
        self._backoff = INIT_RETRY_S
        self._seen = 0
        self._silence_logged_at = float("-inf")
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
            self._backoff = INIT_RETRY_S
            self._send_init()
            self._retry_later()

    def end_session(self) -> None:
        """The session ended: forget the registration and the host's refusal."""
        self._in_session = False
        self.registered = False
        self.not_enabled = False
        self.silent = False
        self.cancel()

    def cancel(self) -> None:
        """Stop the retry and watchdog timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send_init(self) -> None:
        self._init_sends += 1
        self._init_seq = self._send(heartbeat.Init(self._wanted_interval_ms))

    def _arm(self, delay: float) -> None:
        self.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._check)

    def _retry_later(self, at_least: float = 0.0) -> None:
        """Something is wrong (no init_ack, no challenge): look again after a growing delay."""
        self._arm(max(self._backoff, at_least))
        self._backoff = min(self._backoff * 2.0, MAX_RETRY_S)

    def _watch_s(self) -> float:
        return SILENCE_INTERVALS * (self.interval_ms or self._wanted_interval_ms) / 1000.0 + SILENCE_SLACK_S

    def _check(self) -> None:
        self._timer = None
        if not self._in_session or not self.wanted or self.not_enabled:
            return
        if not self.registered:
            if self._init_sends == MAX_INIT_RETRIES + 1:
                LOG.warning("host did not acknowledge init after %d tries; trying again every %gs at most",
                            self._init_sends, MAX_RETRY_S)
            else:
                LOG.debug("no init_ack yet, sending init again")
            self._send_init()
            self._retry_later()
            return
        seen = self._challenges()
        if seen != self._seen:
            self._seen = seen
            self._backoff = INIT_RETRY_S
            if self.silent:
                self.silent = False
                LOG.info("challenges arrive again")
            self._arm(self._watch_s())
            return
        # Registered, yet nobody asks: the host lost us (or never watched us) without a word.
        now = asyncio.get_running_loop().time()
        level = logging.DEBUG
        if not self.silent and now - self._silence_logged_at >= SILENCE_LOG_S:
            self._silence_logged_at = now
            level = logging.WARNING
        LOG.log(level, "registered, but no challenge from the host for %.1fs; registering again",
                self._watch_s())
        self.silent = True
        self.reregistrations += 1
        self._send_init()
        self._retry_later(self._watch_s())

    def on_init_ack(self, ack: heartbeat.InitAck) -> None:
        """The host registered us (again): take its interval and threshold."""
        first = not self.registered
        changed = first or (ack.interval_ms, ack.miss_threshold) != (self.interval_ms, self.miss_threshold)
        self.registered = True
        self.not_enabled = False
        self.interval_ms = ack.interval_ms
        self.miss_threshold = ack.miss_threshold
        if first and self._in_session and self.wanted:
            # From now on challenges must keep coming; the retry timer becomes the watchdog.
            self._seen = self._challenges()
            self._arm(self._watch_s())
        if changed:
            LOG.info("registered: interval %d ms, miss threshold %d", ack.interval_ms, ack.miss_threshold)

    def on_exit_ack(self) -> None:
        """Monitoring ended on our request: no more init, no watchdog."""
        self.registered = False
        self.silent = False
        self.cancel()

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
            self._send_init()
            self._retry_later()
        elif message.code == errors.UNEXPECTED_MESSAGE and self.wanted and message.ref_seq is not None \
                and message.ref_seq == self._init_seq:
            # Our init came before the host took our hello_ack: ask for a hello, which
            # we answer with hello_ack and init (start_session); retry if none comes.
            LOG.debug("host refused init before hello_ack; asking for a hello")
            self.registered = False
            if self._request_hello is not None:
                self._request_hello()
            self._retry_later()
