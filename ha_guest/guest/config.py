"""Configuration of ha-guest-agent: an INI file merged with command line flags.

The INI file (``--config``, default ``/etc/ha-guest/agent.conf`` when it exists)
has an ``[agent]`` section and one ``[check:NAME]`` section per health check.
Command line flags override the file. ``--check NAME=COMMAND`` adds a check
or replaces the file's check of that name; ``--check-period`` and
``--check-timeout`` apply to those checks and are the default of file checks
that set no ``period_s``/``timeout_s`` of their own.

Inline comments (`` ; ...`` or `` # ...`` after whitespace) are stripped from
every value except ``command``, where ``;`` and ``#`` belong to the shell.
Any invalid value raises ConfigError; ``main`` turns it into exit status 2.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ha_guest.guest.localapi import DEFAULT_SOCKET
from ha_guest.protocol.constants import CHANNEL_NAME
from ha_guest.protocol.fields import TOKEN_RE
from ha_guest.protocol.limits import MAX_INTERVAL_MS, MAX_TOKEN_CHARS, MIN_INTERVAL_MS

DEFAULT_CONFIG = "/etc/ha-guest/agent.conf"
# With the host's default miss threshold of 1, a hang is declared within
# 2 x 250 ms + one tick (10 ms), well under the 1 s detection target; at
# 1000 ms it took up to 2 s (doc/source/compute.rst, "Detection time").
DEFAULT_INTERVAL_MS = 250
DEFAULT_CHECK_PERIOD_S = 5.0
DEFAULT_CHECK_TIMEOUT_S = 3.0
MAX_CHECK_SECONDS = 86400.0
MAX_CHECKS = 32
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

AGENT_SECTION = "agent"
CHECK_PREFIX = "check:"
AGENT_KEYS = frozenset(["device", "port_name", "interval_ms", "heartbeat", "api_socket", "api_group", "log_level"])
CHECK_KEYS = frozenset(["command", "period_s", "timeout_s"])

_INLINE_COMMENT = re.compile(r"\s+[;#].*$")
_TRUE = frozenset(["1", "yes", "true", "on"])
_FALSE = frozenset(["0", "no", "false", "off"])


class ConfigError(Exception):
    """The configuration is invalid; the message says where and why."""


@dataclass(frozen=True)
class CheckConfig:
    """One health check command and its schedule."""

    name: str
    command: str
    period_s: float = DEFAULT_CHECK_PERIOD_S
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S


@dataclass(frozen=True)
class AgentConfig:
    """The agent's effective configuration."""

    device: Optional[str] = None  # None: discover the port by name
    port_name: str = CHANNEL_NAME
    interval_ms: int = DEFAULT_INTERVAL_MS
    heartbeat: bool = True
    api_socket: Optional[str] = DEFAULT_SOCKET  # None: local API disabled
    api_group: Optional[str] = None  # group given access to the local API socket
    log_level: str = "INFO"
    checks: List[CheckConfig] = field(default_factory=list)


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser of ha-guest-agent."""
    parser = argparse.ArgumentParser(
        prog="ha-guest-agent",
        description="Answer the compute host's heartbeat challenges over the virtio-serial channel "
                    "and serve the local API for applications.",
    )
    parser.add_argument("--config", metavar="FILE",
                        help="INI file (default %s if it exists)" % DEFAULT_CONFIG)
    parser.add_argument("--device", metavar="PATH",
                        help="channel device or UNIX socket (default: find the port by name)")
    parser.add_argument("--port-name", metavar="NAME", help="virtio-serial port name (default %s)" % CHANNEL_NAME)
    parser.add_argument("--interval-ms", metavar="N",
                        help="heartbeat interval to ask for, %d..%d (default %d)"
                        % (MIN_INTERVAL_MS, MAX_INTERVAL_MS, DEFAULT_INTERVAL_MS))
    parser.add_argument("--no-heartbeat", action="store_true",
                        help="do not register for heartbeating (SGM and the local API still work)")
    parser.add_argument("--api-socket", metavar="PATH",
                        help="local API socket (default %s; empty disables it)" % DEFAULT_SOCKET)
    parser.add_argument("--api-group", metavar="GROUP",
                        help="group that may use the local API socket (default: root only)")
    parser.add_argument("--check", action="append", default=[], metavar="NAME=COMMAND",
                        help="health check run by /bin/sh -c; repeat for more")
    parser.add_argument("--check-period", metavar="S", help="seconds between runs of a check (default %g)"
                        % DEFAULT_CHECK_PERIOD_S)
    parser.add_argument("--check-timeout", metavar="S", help="seconds before a check is killed (default %g)"
                        % DEFAULT_CHECK_TIMEOUT_S)
    parser.add_argument("--log-level", metavar="LEVEL", help="one of %s (default INFO)" % ", ".join(LOG_LEVELS))
    return parser


def load(argv: Optional[Sequence[str]] = None) -> AgentConfig:
    """Parse the command line and the INI file; raise ConfigError if invalid."""
    args = build_parser().parse_args(argv)
    path = args.config
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    ini = read_ini(path) if path is not None else configparser.ConfigParser(interpolation=None)
    return merge(ini, args, path or "<none>")


def read_ini(path: str) -> configparser.ConfigParser:
    """Read an INI file; raise ConfigError if it is missing or malformed."""
    # No interpolation: '%' is common in shell commands.
    ini = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            ini.read_file(handle, source=path)
    except OSError as exc:
        raise ConfigError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError("cannot parse %s: %s" % (path, exc)) from None
    return ini


def merge(ini: configparser.ConfigParser, args: argparse.Namespace, source: str) -> AgentConfig:
    """Combine the INI file and the parsed flags into a validated AgentConfig."""
    agent: Dict[str, str] = {}
    for section in ini.sections():
        if section != AGENT_SECTION and not section.startswith(CHECK_PREFIX):
            raise ConfigError("%s: unknown section [%s]" % (source, section))
    if ini.has_section(AGENT_SECTION):
        for key, value in ini.items(AGENT_SECTION):
            if key not in AGENT_KEYS:
                raise ConfigError("%s: unknown option %r in [agent]" % (source, key))
            agent[key] = _strip_comment(value)

    def pick(key: str, flag: Optional[str]) -> Optional[str]:
        return flag if flag is not None else agent.get(key)

    where = "[agent] %s or --%s"
    device = pick("device", args.device)
    port_name = pick("port_name", args.port_name) or CHANNEL_NAME
    _check_token(port_name, where % ("port_name", "port-name"))
    interval = pick("interval_ms", args.interval_ms)
    interval_ms = DEFAULT_INTERVAL_MS if interval is None else _parse_int(
        interval, MIN_INTERVAL_MS, MAX_INTERVAL_MS, where % ("interval_ms", "interval-ms"))
    heartbeat = _parse_bool(agent.get("heartbeat", "true"), "[agent] heartbeat") and not args.no_heartbeat
    api_socket = pick("api_socket", args.api_socket)
    if api_socket is None:
        api_socket = DEFAULT_SOCKET
    api_group = pick("api_group", args.api_group) or None
    if api_group is not None:
        _check_token(api_group, where % ("api_group", "api-group"))
    log_level = (pick("log_level", args.log_level) or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError("%s must be one of %s" % (where % ("log_level", "log-level"), ", ".join(LOG_LEVELS)))
    return AgentConfig(
        device=device or None,
        port_name=port_name,
        interval_ms=interval_ms,
        heartbeat=heartbeat,
        api_socket=api_socket or None,
        api_group=api_group,
        log_level=log_level,
        checks=_checks(ini, args, source),
    )


def _checks(ini: configparser.ConfigParser, args: argparse.Namespace, source: str) -> List[CheckConfig]:
    period = DEFAULT_CHECK_PERIOD_S
    timeout = DEFAULT_CHECK_TIMEOUT_S
    if args.check_period is not None:
        period = _parse_seconds(args.check_period, "--check-period")
    if args.check_timeout is not None:
        timeout = _parse_seconds(args.check_timeout, "--check-timeout")
    checks: Dict[str, CheckConfig] = {}
    for section in ini.sections():
        if not section.startswith(CHECK_PREFIX):
            continue
        name = section[len(CHECK_PREFIX):]
        where = "%s: [%s]" % (source, section)
        _check_token(name, where + " name")
        values = dict(ini.items(section))
        unknown = sorted(set(values) - CHECK_KEYS)
        if unknown:
            raise ConfigError("%s: unknown option %r" % (where, unknown[0]))
        command = values.get("command", "").strip()
        if not command:
            raise ConfigError("%s: command is missing or empty" % where)
        checks[name] = CheckConfig(
            name,
            command,
            _parse_seconds(_strip_comment(values["period_s"]), where + " period_s") if "period_s" in values
            else period,
            _parse_seconds(_strip_comment(values["timeout_s"]), where + " timeout_s") if "timeout_s" in values
            else timeout,
        )
    for spec in args.check:
        name, sep, command = spec.partition("=")
        name = name.strip()
        _check_token(name, "--check %r name" % spec)
        if not sep or not command.strip():
            raise ConfigError("--check %r must be NAME=COMMAND" % spec)
        checks[name] = CheckConfig(name, command.strip(), period, timeout)
    if len(checks) > MAX_CHECKS:
        raise ConfigError("at most %d checks are allowed, %d given" % (MAX_CHECKS, len(checks)))
    return list(checks.values())


def _strip_comment(value: str) -> str:
    return _INLINE_COMMENT.sub("", value).strip()


def _check_token(value: str, where: str) -> None:
    if not value or len(value) > MAX_TOKEN_CHARS or not TOKEN_RE.match(value):
        raise ConfigError("%s must be 1-%d characters of [A-Za-z0-9._:@-], got %r" % (where, MAX_TOKEN_CHARS, value))


def _parse_int(value: str, minimum: int, maximum: int, where: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError("%s must be an integer, got %r" % (where, value)) from None
    if not minimum <= number <= maximum:
        raise ConfigError("%s must be between %d and %d, got %d" % (where, minimum, maximum, number))
    return number


def _parse_seconds(value: str, where: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise ConfigError("%s must be a number of seconds, got %r" % (where, value)) from None
    # The negated form also rejects NaN.
    if not 0 < number <= MAX_CHECK_SECONDS:
        raise ConfigError("%s must be above 0 and at most %g, got %r" % (where, MAX_CHECK_SECONDS, value))
    return number


def _parse_bool(value: str, where: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError("%s must be true or false, got %r" % (where, value))
