"""ha-guest-agent: register with the compute host, answer challenges, relay SGM.

One asyncio loop runs everything: the channel (transport.Connector), the
health checks (health.CheckRunner) and the local API (api_server.ApiServer).
A challenge is answered from the channel's read callback, with the cached
health, by a direct os.write: no task switch sits between read and answer.

Session flow: 50 ms after every open the agent sends base/hello_request,
unless a hello came first or the open already ended (a port without a host
reads EOF at once, and requests written then would reach the next host as a
burst). Each host hello (the newest wins) is answered with hello_ack and,
unless heartbeat is off, heartbeat/init (registration.Registration: retries,
not_registered, not_enabled for an instance whose flavor has no heartbeat,
and the watchdog that registers again when challenges stop coming).
SIGTERM/SIGINT sends heartbeat/exit when registered, waits up to 1 s for
exit_ack and exits 0.

Logging: INFO only on state changes (channel found, session started,
registered, overall health changed, host side gone), DEBUG per frame.
Protocol errors are answered with base/error at most ERROR_REPLY_RATE per
second; the first of a burst is logged, then one summary line per 10 s.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import sys
from typing import Any, Callable, Dict, List, Optional

from ha_guest.guest import config as config_mod
from ha_guest.guest import localapi
from ha_guest.guest.api_server import ApiServer, ApiSocketInUse
from ha_guest.guest.health import CheckRunner, HealthModel, ReportLimitError
from ha_guest.guest.localapi import RequestError, ok
from ha_guest.guest.logthrottle import BurstLog
from ha_guest.guest.messaging import GroupMessaging
from ha_guest.guest.registration import Registration
from ha_guest.guest.transport import Channel, Connector, find_port
from ha_guest.protocol import errors, heartbeat
from ha_guest.protocol.codec import GUEST, ChannelCodec
from ha_guest.protocol.constants import APP_BASE, APP_SGM
from ha_guest.protocol.envelope import Envelope, encode_message
from ha_guest.protocol.limits import ERROR_REPLY_BURST, ERROR_REPLY_RATE
from ha_guest.protocol.messages import Error, Hello, HelloAck, HelloRequest, Message
from ha_guest.protocol.ratelimit import TokenBucket
from ha_guest.protocol.versioning import BASE_VERSION, negotiate

LOG = logging.getLogger("ha_guest.guest.agent")  # not __name__: "__main__" under python -m

EXIT_ACK_TIMEOUT_S = 1.0
EXIT_REASON = "agent stopping"
# A port without a host reads EOF at once; waiting this long before asking
# for a hello keeps such short-lived opens from queueing hello_requests.
HELLO_REQUEST_DELAY_S = 0.05


def _agent_id() -> str:
    """Return "ha-guest-agent/<version>" for hello_ack."""
    try:
        from importlib import metadata

        version = metadata.version("ha_guest")
    except Exception:  # noqa: BLE001 - a zipapp has no distribution metadata
        version = "unknown"
    return ("ha-guest-agent/" + version)[:64]


class Agent:
    """The guest agent: channel session, heartbeat answers, SGM and local API."""

    def __init__(self, cfg: config_mod.AgentConfig, resolve: Optional[Callable[[], Optional[str]]] = None) -> None:
        self.cfg = cfg
        self.agent_id = _agent_id()
        self.codec = ChannelCodec(GUEST)
        self.health = HealthModel()
        self.checks = CheckRunner(self.health, cfg.checks)
        self.connector = Connector(resolve or self._resolve, self._on_open, self._on_data, self._on_lost)
        self.api = ApiServer(cfg.api_socket, self.dispatch, group=cfg.api_group) if cfg.api_socket else None
        self.counters: Dict[str, int] = collections.OrderedDict(
            (name, 0) for name in ("challenges", "responses", "protocol_errors", "error_replies",
                                   "error_replies_suppressed", "host_errors", "sessions"))
        self.sgm = GroupMessaging(self._send, self._has_session, self._publish)
        self.reg = Registration(self._send, cfg.heartbeat, cfg.interval_ms,
                                lambda: self.counters["challenges"], self._ask_for_hello)
        self._channel: Optional[Channel] = None
        self._debug = False
        self._last_health = heartbeat.HEALTHY
        self._hello_request_timer: Optional[asyncio.TimerHandle] = None
        self._superseded = 0
        self._exit_ack: Optional["asyncio.Future[None]"] = None
        self._stop: Optional[asyncio.Event] = None
        self._error_bucket = TokenBucket(ERROR_REPLY_RATE, ERROR_REPLY_BURST)
        self._error_log = BurstLog(LOG, "protocol errors")
        self._host_error_log = BurstLog(LOG, "errors reported by the host")

    @property
    def registered(self) -> bool:
        """Return whether the host acknowledged our init in this session."""
        return self.reg.registered

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or stop()); return the exit status."""
        loop = asyncio.get_running_loop()
        self._debug = LOG.isEnabledFor(logging.DEBUG)
        self._stop = asyncio.Event()
        handled: List[int] = []
        for signum in (int(signal.SIGTERM), int(signal.SIGINT)):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
                handled.append(signum)
            except (RuntimeError, ValueError):
                # Not the main thread (an embedding test or demo): stop() still works.
                LOG.debug("cannot handle signal %d in this thread", signum)
        connecting: Optional["asyncio.Future[None]"] = None
        try:
            if self.api is not None:
                try:
                    await self.api.start()
                except (OSError, ApiSocketInUse) as exc:
                    LOG.error("cannot serve the local API on %s: %s", self.cfg.api_socket, exc)
                    return 1
            self.checks.start()
            connecting = asyncio.ensure_future(self.connector.run())
            stopping = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([connecting, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if connecting.done():
                connecting.result()  # Only an unexpected error ends it: let it show.
            await self._say_goodbye()
            return 0
        finally:
            for handled_signum in handled:
                loop.remove_signal_handler(handled_signum)
            if connecting is not None:
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)
            self.reg.cancel()
            for log in (self._error_log, self._host_error_log, self.sgm.nack_log):
                log.cancel()
            await self.checks.stop()
            if self.api is not None:
                await self.api.stop()
            LOG.info("stopped")

    def stop(self) -> None:
        """Ask run() to finish, as SIGTERM does (from another thread: loop.call_soon_threadsafe)."""
        if self._stop is not None:
            self._stop.set()

    def _on_signal(self, signum: int) -> None:
        LOG.info("%s received, stopping", signal.Signals(signum).name)
        self.stop()

    async def _say_goodbye(self) -> None:
        if not self.registered or self._channel is None:
            return
        self._exit_ack = asyncio.get_running_loop().create_future()
        if self._send(heartbeat.Exit(EXIT_REASON)) is None:
            return
        try:
            await asyncio.wait_for(self._exit_ack, EXIT_ACK_TIMEOUT_S)
            LOG.info("host acknowledged exit")
        except asyncio.TimeoutError:
            LOG.warning("no exit_ack within %gs", EXIT_ACK_TIMEOUT_S)

    def _resolve(self) -> Optional[str]:
        if self.cfg.device:
            return self.cfg.device
        return find_port(self.cfg.port_name)

    def _on_open(self, channel: Channel) -> None:
        self._channel = channel
        self.codec.reset()
        self.reg.end_session()
        self._hello_request_timer = asyncio.get_running_loop().call_later(
            HELLO_REQUEST_DELAY_S, self._request_hello, channel)

    def _request_hello(self, channel: Channel) -> None:
        self._hello_request_timer = None
        # An already connected host only speaks after a hello_request.
        if channel is self._channel and self.codec.session is None:
            self._send(HelloRequest())

    def _ask_for_hello(self) -> None:
        """The host did not take our hello_ack (it refused our init): ask for a new hello."""
        if self._channel is not None:
            self._send(HelloRequest())

    def _on_lost(self, reason: str) -> None:
        self._channel = None
        if self._hello_request_timer is not None:
            self._hello_request_timer.cancel()
            self._hello_request_timer = None
        had_session = self.codec.session is not None
        self._end_session("host side gone")
        self.codec.reset()
        if had_session:
            LOG.info("host side gone (%s); reconnecting", reason)
        elif self._debug:
            LOG.debug("channel closed: %s", reason)
        if self._exit_ack is not None and not self._exit_ack.done():
            self._exit_ack.set_result(None)

    def _end_session(self, why: str) -> None:
        self.reg.end_session()
        self.sgm.end_session(why)

    def _send(self, message: Message) -> Optional[int]:
        """Write one frame now; return its seq, or None if there is no channel."""
        channel = self._channel
        if channel is None or channel.closed:
            return None
        seq = self.codec.next_seq()
        version = BASE_VERSION if message.APP == APP_BASE else self.codec.version
        frame = encode_message(message, seq, self.codec.session, version)
        if self._debug:
            LOG.debug("send %s", frame[:-1].decode("utf-8", "replace"))
        return seq if channel.send(frame) else None

    def _on_data(self, data: bytes) -> None:
        for item in self.codec.feed(data):
            if isinstance(item, errors.ProtocolError):
                self._on_protocol_error(item)
                continue
            if item.session != self.codec.session:
                # A newer hello later in this read already superseded it: the
                # host that sent it is gone, and a reply would carry the new session.
                self._superseded += 1
                continue
            if self._debug:
                LOG.debug("recv %s/%s seq %d", item.app, item.type, item.seq)
            message = item.message
            # Challenges first: they are nearly all the traffic and latency counts.
            if isinstance(message, heartbeat.Challenge):
                self._on_challenge(message)
            else:
                self._dispatch_frame(item)

    def _on_challenge(self, message: heartbeat.Challenge) -> None:
        self.counters["challenges"] += 1
        health, reason = self.health.overall()
        if self._send(heartbeat.Response(message.nonce, health, reason)) is not None:
            self.counters["responses"] += 1
        if health != self._last_health:
            self._last_health = health
            LOG.info("guest is now %s%s", health, ": " + reason if reason else "")

    def _dispatch_frame(self, env: Envelope) -> None:
        message = env.message
        if isinstance(message, Hello):
            self._on_hello(env, message)
        elif isinstance(message, heartbeat.InitAck):
            self.reg.on_init_ack(message)
        elif isinstance(message, heartbeat.ExitAck):
            if self._exit_ack is not None and not self._exit_ack.done():
                self._exit_ack.set_result(None)
            self.reg.on_exit_ack()
        elif isinstance(message, Error):
            self._on_host_error(message)
        elif message.APP == APP_SGM:
            self.sgm.on_message(message)

    def _on_protocol_error(self, exc: errors.ProtocolError) -> None:
        self.counters["protocol_errors"] += 1
        self._error_log.hit("protocol error from host: %s", exc)
        if self._error_bucket.allow():
            self.counters["error_replies"] += 1
            self._send(Error.from_exception(exc))
        else:
            self.counters["error_replies_suppressed"] += 1

    def _on_hello(self, env: Envelope, hello: Hello) -> None:
        self._end_session("host started a new session")
        try:
            version = negotiate(hello.version_min, hello.version_max)
        except errors.ProtocolError as exc:
            LOG.warning("cannot agree on a version with the host: %s", exc.detail)
            exc.ref_seq = env.seq
            self._send(Error.from_exception(exc))
            return
        self.codec.version = version
        self.connector.mark_good()
        self.counters["sessions"] += 1
        LOG.info("session %s started, protocol version %d", env.session, version)
        self._send(HelloAck(version, self.agent_id))
        self.reg.start_session()

    def _on_host_error(self, message: Error) -> None:
        # not_enabled is the host's answer for an SGM-only instance, not a problem: reg logs it once.
        if message.code != errors.NOT_ENABLED:
            self.counters["host_errors"] += 1
            self._host_error_log.hit("host reported %s: %s (ref_seq %s)", message.code, message.detail,
                                     message.ref_seq)
        self.reg.on_error(message)

    def _has_session(self) -> bool:
        return self._channel is not None and self.codec.session is not None

    def _publish(self, event: Dict[str, Any]) -> None:
        if self.api is not None:
            self.api.publish(event)

    async def dispatch(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """Serve one validated local API request."""
        op = request["op"]
        if op == localapi.OP_REPORT:
            try:
                self.health.report(request["source"], request["health"], request["reason"], request["expires_in_s"])
            except ReportLimitError as exc:
                raise RequestError(localapi.E_BUSY, str(exc)) from None
            return ok()
        if op == localapi.OP_CLEAR:
            return ok(cleared=self.health.clear(request["source"]))
        if op == localapi.OP_AGENT_STATUS:
            return self.status()
        if op == localapi.OP_BROADCAST:
            return ok(seq=self.sgm.broadcast(request["payload"]))
        if op == localapi.OP_GROUP_STATUS:
            return ok(members=await self.sgm.group_status(request["timeout_s"]))
        raise RequestError(localapi.E_BAD_REQUEST, "op %s is not served here" % op)

    def status(self) -> Dict[str, Any]:
        """Return the agent_status reply."""
        health, reason = self.health.overall()
        counters = dict(self.counters)
        counters.update(self.sgm.counters)
        counters["stale_frames"] = self.codec.stale_frames + self._superseded
        counters["reconnects"] = max(0, self.connector.opens - 1)
        counters["reregistrations"] = self.reg.reregistrations
        channel, reg = self._channel, self.reg
        return ok(
            connected=self._has_session(),
            session=self.codec.session,
            version=self.codec.version,
            registered=reg.registered,
            heartbeat=self.cfg.heartbeat,
            heartbeat_state=reg.state,
            interval_ms=reg.interval_ms if reg.registered else None,
            miss_threshold=reg.miss_threshold if reg.registered else None,
            health=health,
            reason=reason,
            checks=self.health.checks_snapshot(),
            reports=self.health.reports_snapshot(),
            counters=counters,
            device=channel.path if channel is not None else None,
            agent=self.agent_id,
        )


def main(argv: Optional[List[str]] = None) -> int:
    """Run ha-guest-agent; return 0 after SIGTERM, 1 on a fatal error, 2 on bad configuration."""
    try:
        cfg = config_mod.load(argv)
    except config_mod.ConfigError as exc:
        print("ha-guest-agent: error: %s" % exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # argparse: --help or a usage error
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(stream=sys.stderr, level=cfg.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    LOG.info("starting: device %s, heartbeat %s (%d ms), %d checks, local API %s",
             cfg.device or "port " + cfg.port_name, "on" if cfg.heartbeat else "off", cfg.interval_ms,
             len(cfg.checks), cfg.api_socket or "off")
    return asyncio.run(Agent(cfg).run())


if __name__ == "__main__":
    sys.exit(main())
