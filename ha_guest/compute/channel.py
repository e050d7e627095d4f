"""One instance's channel on the compute host: session and heartbeat glue (connecting: connection.py).

A ``GuestChannel`` is the asyncio protocol of every connection to one
instance's host socket (QEMU listens, we connect as a client). It speaks the
host side of the protocol (doc/source/protocol.rst) and hands heartbeat
answers to the instance's GuestMonitor; the monitor, driven by the agent's
single scheduler tick, sends challenges through ``send_challenge``. Server
group messaging requests go to the ``sgm`` hook (the SgmRelay); heartbeat
frames of an instance whose flavor has heartbeat off get ``not_enabled``.

Whatever a guest sends, the damage stays on its own channel: no exception
leaves a callback, error replies and log lines are rate-limited, every read
is charged to the guest's budget before it is parsed and one over it is
dropped unparsed while reading pauses (guest_budget.py), and a guest that
stops reading has its connection dropped once the write buffer is full.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, List, Optional, Union

from ha_guest.compute import fastpath
from ha_guest.compute.channel_writer import ChannelSettings, ChannelWriter
from ha_guest.compute.discovery.base import LEGACY_FEATURES, Features
from ha_guest.compute.guest_budget import GuestBudget
from ha_guest.compute.heartbeat_monitor import WATCHED, GuestMonitor, GuestState
from ha_guest.compute.log_gate import LogGate
from ha_guest.compute.log_text import clean
from ha_guest.compute.scheduler import TickScheduler
from ha_guest.protocol import errors, heartbeat, sgm, versioning
from ha_guest.protocol.envelope import Envelope
from ha_guest.protocol.messages import Error, Hello, HelloAck, HelloRequest, Message

LOG = logging.getLogger(__name__)

class GuestChannel(ChannelWriter):
    """The host end of one instance's channel, across reconnections.

    A BufferedProtocol reading into ``buffer``, which the channels of one
    loop share (see fastpath.py).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, instance_uuid: str, path: str,
                 scheduler: TickScheduler, settings: ChannelSettings,
                 buffer: Optional[memoryview] = None) -> None:
        super().__init__(loop, instance_uuid, path, settings, LogGate(LOG, loop.time, instance_uuid=instance_uuid))
        self.buffer = buffer if buffer is not None else fastpath.read_buffer()
        self._buffer_bytes: bytearray = self.buffer.obj  # type: ignore[assignment]  # count() works on it
        self.scheduler = scheduler
        self.monitor: Optional[GuestMonitor] = None  # set by the owner right after construction
        self.features: Features = LEGACY_FEATURES  # what the instance's flavor enabled (discovery says)
        #: Serves sgm/broadcast and sgm/status_request (the SgmRelay); None: SGM answered not_enabled.
        self.sgm: Optional[Callable[["GuestChannel", Envelope, Message], None]] = None
        self.hello_acked = False
        self.agent = ""
        self._resume_timer: Optional[asyncio.TimerHandle] = None
        self._hello_sent_at = -1e9
        self._at_boundary = True  # the codec's decoder holds no partial frame
        self._skip_line = False  # the rest of a dropped read's last line is still to come: drop it too
        self._budget = GuestBudget(settings.guest_byte_rate, settings.guest_byte_burst, settings.guest_frame_rate,
                                   settings.guest_frame_burst, loop.time())

    # -- state -----------------------------------------------------------------------------------

    @property
    def sgm_enabled(self) -> bool:
        """Whether the instance's flavor enabled server group messaging."""
        return self.features.server_group_messaging

    def close(self) -> None:
        """Disconnect for good."""
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        super().close()

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self._closing:
            transport.abort()
            return
        self.transport = transport
        self.counters["connections"] += 1
        session = self.codec.start_session()
        self.hello_acked = False
        self._at_boundary = True
        self._skip_line = False
        self._format_session_frames()
        LOG.debug("%s: connected to %s, session %s", self.instance_uuid, self.path, session,
                  extra={"instance_uuid": self.instance_uuid})
        self._send_hello()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.transport = None
        self.hello_acked = False
        self._challenge_frame = b""
        self.codec.reset()
        self._cancel_timer()
        if self._closing:
            return
        # A channel that vanished while the domain runs is a fault, but the
        # socket usually goes because the domain stopped: give discovery the
        # grace period to say so before misses count again.
        if self.monitor is not None:
            self.monitor.hold_verdicts(self.loop.time() + self.settings.channel_loss_grace_s)
        self._log.log(logging.INFO, "%s: channel closed (%s); reconnecting", self.instance_uuid,
                      exc or "end of file")
        self._schedule_reconnect()

    def eof_received(self) -> bool:
        return False  # QEMU never half-closes; close and reconnect.

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        buffer = self.buffer
        end = nbytes - 1
        now = self.loop.time()
        # Every read is charged to the guest before anything looks inside it (guest_budget.py).
        if not self._budget.charge(nbytes, self._buffer_bytes.count(10, 0, nbytes), now):  # 10: b"\n"
            self._over_budget(nbytes, buffer[end] == 10)
            return
        # One healthy answer per read is nearly all the traffic: match it in
        # place, without copying it out of the shared buffer.
        if self._at_boundary and end > 0 and buffer[end] == 10:
            try:
                if self._receive_line(buffer, end, now, whole=False):
                    return
            except Exception:  # noqa: BLE001 - see _received
                self._log.log(logging.ERROR, "%s: unexpected error handling an answer; dropping the connection",
                              self.instance_uuid, exc_info=True)
                if self.transport is not None:
                    self.transport.abort()
                return
        self._received(buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        """Handle bytes from the guest, charged as buffer_updated charges them (the entry point for tests)."""
        if not self._budget.charge(len(data), data.count(b"\n"), self.loop.time()):
            self._over_budget(len(data), data.endswith(b"\n"))
            return
        self._received(data)

    def _received(self, data: bytes) -> None:
        try:
            self._receive(data)
        except Exception:  # noqa: BLE001 - a guest's bytes must never break the loop
            self._log.log(logging.ERROR, "%s: unexpected error handling guest data; dropping the connection",
                          self.instance_uuid, exc_info=True)
            if self.transport is not None:
                self.transport.abort()

    # -- hello -----------------------------------------------------------------------------------

    def _send_hello(self) -> None:
        self.send(Hello(versioning.MIN_VERSION, versioning.MAX_VERSION))
        self._hello_sent_at = self.loop.time()
        self._cancel_timer()
        self._timer = self.loop.call_later(self.settings.hello_retry_s, self._hello_timeout)

    def _hello_timeout(self) -> None:
        self._timer = None
        if self.transport is not None and not self.hello_acked:
            self._send_hello()

    # -- receiving -------------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        if self._skip_line:  # the tail of a line whose head was dropped over budget
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._skip_line = False
            self._at_boundary = True
            data = data[newline + 1:]
            if not data:
                return
        end = len(data) - 1
        if not self._at_boundary or end < 0 or data[end] != 10:  # 10: b"\n"
            self._at_boundary = data.endswith(b"\n")
            self._receive_frames(self.codec.feed(data))
            return
        # Whole lines with the decoder idle: each line can be tried on the
        # fast path; a line it does not take gets the codec, same outcome.
        now = self.loop.time()
        if data.find(b"\n") == end:
            self._receive_line(data, end, now)  # one frame per read: nearly always
            return
        for line in data[:end].split(b"\n"):
            if self.transport is None or self.transport.is_closing():
                return  # dropped while handling an earlier frame
            self._receive_line(line + b"\n", len(line), now)

    def _receive_line(self, line: Any, end: int, now: float, whole: bool = True) -> bool:
        """Handle one frame whose newline is at ``end``; False if ``whole`` is off and it needs the codec."""
        match = fastpath.healthy_response(line, 0, end)
        monitor = self.monitor
        if match is None or monitor is None or match.group(3) != self._session_bytes \
                or match.group(1) != self._version_bytes:
            if not whole:
                return False
            self._receive_frames(self.codec.feed(line))
            return True
        self.counters["frames"] += 1
        if monitor.state in WATCHED:
            monitor.response(match.group(4).decode("ascii"), True, "", now)
        elif monitor.state != GuestState.SUSPENDED:
            self._not_watched(int(match.group(2)))
        return True

    def _receive_frames(self, items: List[Union[Envelope, errors.ProtocolError]]) -> None:
        if not items:
            return
        now = self.loop.time()
        monitor = self.monitor
        for item in items:
            if self.transport is None or self.transport.is_closing():
                return  # dropped while handling an earlier frame
            self.counters["frames"] += 1
            if isinstance(item, errors.ProtocolError):
                self.counters["protocol_errors"] += 1
                self._log.log(logging.WARNING, "%s: bad frame from guest: %s", self.instance_uuid, clean(item))
                self._reply_error(item)
                continue
            message = item.message
            if type(message) is heartbeat.Response and monitor is not None:
                self._on_response(item, message, monitor, now)
            else:
                self._dispatch(item, now)

    def _over_budget(self, nbytes: int, at_newline: bool) -> None:
        """Drop a read that did not fit the guest's budget, unparsed, and stop reading for a pause."""
        self.counters["rate_limited"] += 1
        if self._budget.lines_exceeded:
            self.counters["rate_limited_lines"] += 1
        self.counters["bytes_dropped"] += nbytes
        # Whatever the decoder held belongs to a dropped line; a read that ends
        # inside a line leaves its tail to come, dropped in turn (_receive).
        self.codec.decoder.reset()
        self._skip_line = not at_newline
        self._at_boundary = at_newline
        settings = self.settings
        self._reply_error(errors.ProtocolError(errors.RATE_LIMITED, "more than %g lines or %d bytes per second"
                                               % (settings.guest_frame_rate, settings.guest_byte_rate), None))
        self._log.log(logging.WARNING, "%s: guest exceeds %g lines or %d bytes per second; input dropped unread, "
                      "reading paused", self.instance_uuid, settings.guest_frame_rate, settings.guest_byte_rate)
        # Stop reading for a while: the kernel and QEMU hold the guest's bytes
        # meanwhile, so a flood costs us one dropped read per pause.
        transport = self.transport
        if transport is not None and self._resume_timer is None:
            transport.pause_reading()
            self.counters["paused"] += 1
            self._resume_timer = self.loop.call_later(settings.guest_pause_s, self._resume_reading)

    def _resume_reading(self) -> None:
        self._resume_timer = None
        if self.transport is not None:
            self.transport.resume_reading()

    def _on_response(self, env: Envelope, message: heartbeat.Response, monitor: GuestMonitor, now: float) -> None:
        if monitor.state in WATCHED:
            monitor.response(message.nonce, message.health == heartbeat.HEALTHY, message.reason, now)
        elif monitor.state != GuestState.SUSPENDED:
            self._not_watched(env.seq)

    def _not_watched(self, ref: Optional[int]) -> None:
        if self.features.heartbeat:
            self._reply_error(errors.ProtocolError(errors.NOT_REGISTERED, "not registered in this session", ref))
        else:
            self._reply_error(errors.ProtocolError(errors.NOT_ENABLED, "heartbeat is not enabled for this instance",
                                                   ref))

    def _dispatch(self, env: Envelope, now: float) -> None:
        message = env.message
        monitor = self.monitor
        if isinstance(message, HelloAck):
            self._on_hello_ack(env, message)
        elif isinstance(message, HelloRequest):
            # Queued requests come in bursts: a hello still waiting for its ack answers them all.
            if self.hello_acked or now - self._hello_sent_at >= self.settings.hello_retry_s:
                self._send_hello()
        elif isinstance(message, heartbeat.Init):
            if not self.hello_acked:
                # Registration belongs to an accepted session: refuse it loudly (the guest
                # asks for a hello); whatever was watched before stays watched.
                self._reply_error(errors.ProtocolError(errors.UNEXPECTED_MESSAGE, "init before hello_ack", env.seq))
            elif not self.features.heartbeat:
                self._not_watched(env.seq)
            elif monitor is not None:
                due = monitor.next_due
                interval = monitor.register(message.interval_ms, now)  # a re-init keeps misses and deadline
                if monitor.next_due != due:
                    self.scheduler.schedule(monitor)
                self.send(heartbeat.InitAck(interval, self.settings.miss_threshold))
        elif isinstance(message, heartbeat.Exit):
            self.send(heartbeat.ExitAck())
            if monitor is not None and (monitor.persistent_state not in (GuestState.UNREGISTERED, GuestState.EXITED)
                                        or monitor.incident_id is not None):
                monitor.exit(message.reason, now)
        elif isinstance(message, Error):
            self.counters["errors_received"] += 1
            self._log.log(logging.WARNING, "%s: guest reported %s: %s (ref_seq %s)", self.instance_uuid,
                          clean(message.code), clean(message.detail), clean(message.ref_seq))
        elif isinstance(message, (sgm.Broadcast, sgm.StatusRequest)):
            if self.sgm is not None:
                self.sgm(self, env, message)
            else:
                self.send(sgm.Nack(env.seq, sgm.NACK_NOT_ENABLED, "server group messaging is not enabled"))
        elif isinstance(message, heartbeat.Response):
            self._not_watched(env.seq)

    def _on_hello_ack(self, env: Envelope, message: HelloAck) -> None:
        if not versioning.MIN_VERSION <= message.version <= versioning.MAX_VERSION:
            self._reply_error(errors.ProtocolError(
                errors.UNSUPPORTED_VERSION, "version %d not in %d-%d" % (
                    message.version, versioning.MIN_VERSION, versioning.MAX_VERSION), env.seq))
            return
        first = not self.hello_acked
        self.hello_acked = True
        self.agent = message.agent
        self.connected_again()
        if self.codec.version != message.version:
            self.codec.version = message.version
            self._format_session_frames()
        self._cancel_timer()
        if first:
            # The first hello_ack of a new connection ends the registration of the
            # previous one (the guest sends init again right after; an open fault
            # stays open). Another hello_ack in this session changes nothing else:
            # a registered guest leaves monitoring only by exit.
            if self.monitor is not None:
                self.monitor.unregister()
            self._log.log(logging.DEBUG, "%s: session %s acknowledged by %s", self.instance_uuid, self.codec.session,
                          clean(message.agent) or "an unnamed agent")
