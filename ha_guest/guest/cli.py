"""ha-guest-client: report health, read the agent's status and use server group messaging from a shell."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from ha_guest.guest import localapi
from ha_guest.guest.client import AgentClient, AgentError, AgentUnavailable
from ha_guest.protocol.limits import BROADCAST_BURST, BROADCAST_RATE, MAX_BROADCAST_BYTES

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

#: Environment variable that overrides the default agent socket.
SOCKET_ENV = "HA_GUEST_SOCKET"

PROG = "ha-guest-client"

SGM_NEEDS = "Needs a flavor with ha_guest:server_group_messaging=true and membership in a Nova server group."


class UsageError(Exception):
    """A problem with the command line or its input files (exit code 2)."""


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not value > 0:
        raise argparse.ArgumentTypeError("%r must be greater than 0" % text)
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError("%r must be at least 1" % text)
    return value


def _print(text: str = "") -> None:
    # Flushed per line: listen output is usually piped into another program.
    print(text, flush=True)


def _printable(text: str) -> str:
    """Escape control characters: a peer's payload must not drive our terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _dump_json(obj: Any) -> None:
    _print(json.dumps(obj, sort_keys=True))


def _cmd_report(client: AgentClient, args: argparse.Namespace) -> int:
    if args.health == "healthy":
        client.report_healthy(args.source, args.expires_in)
    else:
        client.report_unhealthy(args.source, args.reason, args.expires_in)
    return EXIT_OK


def _cmd_clear(client: AgentClient, args: argparse.Namespace) -> int:
    client.clear(args.source)
    return EXIT_OK


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


def _table(rows: List[List[str]], indent: str = "  ") -> None:
    # Columns empty in every row are left out rather than padded.
    keep = [i for i in range(len(rows[0])) if any(row[i] for row in rows)]
    rows = [[row[i] for i in keep] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(keep))]
    for row in rows:
        _print((indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths))).rstrip())


def _cmd_status(client: AgentClient, args: argparse.Namespace) -> int:
    status = client.agent_status()
    if args.json:
        _dump_json(status)
        return EXIT_OK
    if status.get("connected"):
        _print(
            "host:       connected (session %s, protocol version %s)" % (status.get("session"), status.get("version"))
        )
    else:
        _print("host:       not connected (waiting for the host side)")
    if status.get("device"):
        _print("channel:    %s" % status.get("device"))
    if status.get("heartbeat") is False:
        _print("heartbeat:  off")
    elif status.get("heartbeat_state") == "not_enabled":
        _print("heartbeat:  not enabled for this instance by its flavor (server group messaging only)")
    elif status.get("registered"):
        _print(
            "heartbeat:  registered (interval %s ms, miss threshold %s)"
            % (status.get("interval_ms"), status.get("miss_threshold"))
        )
    else:
        _print("heartbeat:  not registered")
    health = str(status.get("health", "unknown"))
    reason = status.get("reason") or ""
    _print("health:     %s%s" % (health, ": " + _printable(reason) if reason else ""))
    for title, items, key in (("checks", status.get("checks"), "name"), ("reports", status.get("reports"), "source")):
        if not isinstance(items, list) or not items:
            _print("%-11s none" % (title + ":"))
            continue
        _print("%s:" % title)
        rows = []
        for item in items:
            if not isinstance(item, dict):
                continue
            expires = item.get("expires_in_s")
            rows.append(
                [
                    str(item.get(key, "?")),
                    str(item.get("health", "?")),
                    "" if expires is None else "expires in %.1fs" % float(expires),
                    _printable(str(item.get("reason") or "")),
                ]
            )
        if rows:
            _table(rows)
    counters = status.get("counters")
    if isinstance(counters, dict) and counters:
        _print("counters:   " + " ".join("%s=%s" % (k, counters[k]) for k in sorted(counters)))
    return EXIT_OK


def _read_payload(args: argparse.Namespace) -> bytes:
    if args.file is None and args.text != "-":
        return str(args.text).encode("utf-8")
    name = "standard input" if args.file is None else args.file
    try:
        if args.file is None:
            data = sys.stdin.buffer.read(MAX_BROADCAST_BYTES + 1)
        else:
            with open(args.file, "rb") as handle:
                # Reading one byte past the limit is enough to refuse, whatever the file's size.
                data = handle.read(MAX_BROADCAST_BYTES + 1)
    except OSError as exc:
        raise UsageError("cannot read %s: %s" % (name, exc.strerror or exc)) from None
    if len(data) > MAX_BROADCAST_BYTES:
        raise AgentError(localapi.E_TOO_LARGE, "%s holds more than %d bytes" % (name, MAX_BROADCAST_BYTES))
    return data


def _cmd_broadcast(client: AgentClient, args: argparse.Namespace) -> int:
    client.broadcast(_read_payload(args))
    return EXIT_OK


def _cmd_group_status(client: AgentClient, args: argparse.Namespace) -> int:
    members = client.group_status(args.timeout_s)
    if args.json:
        _dump_json(members)
        return EXIT_OK
    if not members:
        _print("no members")
        return EXIT_OK
    rows = [["UUID", "STATE", "POWER STATE", ""]]
    for member in members:
        rows.append(
            [
                str(member.get("uuid", "?")),
                str(member.get("state", "?")),
                str(member.get("power_state") or "-"),
                "(self)" if member.get("self") else "",
            ]
        )
    _table(rows, indent="")
    return EXIT_OK


def format_event(event: Dict[str, Any]) -> str:
    """Return the one-line human form of a listen event."""
    name = event.get("event")
    if name == localapi.EV_BROADCAST:
        payload = event.get("payload", b"")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return "broadcast from %s (base64): %s" % (event.get("sender"), base64.b64encode(payload).decode("ascii"))
        return "broadcast from %s: %s" % (event.get("sender"), _printable(text))
    if name == localapi.EV_NOTIFICATION:
        return "notification: member %s %s state=%s power_state=%s" % (
            event.get("member"),
            event.get("event_type"),
            event.get("state"),
            event.get("power_state") or "-",
        )
    if name == localapi.EV_DROPPED:
        return "dropped: %s events (this listener was too slow)" % event.get("count")
    return "%s: %s" % (_printable(str(name)), _printable(json.dumps(event, sort_keys=True, default=str)))


def _event_json(event: Dict[str, Any]) -> Dict[str, Any]:
    """Return the event as the agent sent it (payload back to base64)."""
    payload = event.get("payload")
    if isinstance(payload, bytes):
        event = dict(event, payload=base64.b64encode(payload).decode("ascii"))
    return event


def _cmd_listen(client: AgentClient, args: argparse.Namespace) -> int:
    seen = 0
    with client.listen() as events:
        for event in events:
            if args.json:
                _dump_json(_event_json(event))
            else:
                _print(format_event(event))
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (the default socket honours HA_GUEST_SOCKET)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Talk to ha-guest-agent through its local socket.",
        epilog="Exit codes: 0 done, 1 the agent refused (CODE: DETAIL on stderr), 2 usage error, 3 agent unavailable.",
    )
    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=os.environ.get(SOCKET_ENV) or localapi.DEFAULT_SOCKET,
        help="agent socket (default: $%s or %s)" % (SOCKET_ENV, localapi.DEFAULT_SOCKET),
    )
    parser.add_argument("--timeout", metavar="S", type=_positive, default=5.0, help="seconds to wait for the agent")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def add(name: str, func: Callable[[AgentClient, argparse.Namespace], int], text: str,
            details: str = "") -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text + (". " + details if details else ""))
        sub.set_defaults(func=func)
        return sub

    report = add("report", _cmd_report, "report an application's health to the agent")
    report.add_argument("health", choices=("healthy", "unhealthy"))
    report.add_argument("--source", default="cli", help="who reports (default: cli); one report per source")
    report.add_argument("--reason", default="", help="why unhealthy (at most 256 characters)")
    report.add_argument(
        "--expires-in", metavar="S", type=_positive, help="turn unhealthy unless reported again within S seconds"
    )

    clear = add("clear", _cmd_clear, "remove a source's report")
    clear.add_argument("--source", default="cli", help="whose report (default: cli)")

    status = add("status", _cmd_status, "show the agent's connection, heartbeat and health")
    status.add_argument("--json", action="store_true", help="print the agent's reply as JSON")

    broadcast = add(
        "broadcast", _cmd_broadcast, "send up to %d bytes to the other server group members" % MAX_BROADCAST_BYTES,
        SGM_NEEDS + " Best effort: success means the agent handed it to the host, not that every member "
        "got it (a refusal by the host, a nack, only shows in the agent's log); "
        "the members receive it with this instance's UUID as sender, stamped by the host, and one sender's "
        "messages never arrive out of order (an overtaken one is dropped). At most %g per second "
        "(bursts of %d), broadcasts and group-status together." % (BROADCAST_RATE, BROADCAST_BURST),
    )
    source = broadcast.add_mutually_exclusive_group(required=True)
    source.add_argument("text", nargs="?", help="the message as text, or - to read it from standard input")
    source.add_argument("--file", metavar="F", help="read the message from file F")

    group = add(
        "group-status", _cmd_group_status, "show the state of every server group member",
        SGM_NEEDS + " Lists every member, this instance included (marked self), with its Nova vm_state and power "
        "state. Fails with 'nack' and a reason (not_enabled, no_group, rate_limited, unavailable, "
        "group_too_large) when the host cannot answer.",
    )
    group.add_argument(
        "--timeout", dest="timeout_s", metavar="S", type=_positive, default=2.0, help="wait for the host (default 2)"
    )
    group.add_argument("--json", action="store_true", help="print the members as JSON")

    listen = add(
        "listen", _cmd_listen, "print server group messages and notifications as they arrive",
        SGM_NEEDS + " Broadcasts come from the other members; notifications report a peer's Nova state change "
        "(event, vm_state, power state), never this instance's own.",
    )
    listen.add_argument("--count", metavar="N", type=_count, help="exit after N events")
    listen.add_argument("--json", action="store_true", help="print one JSON object per event")
    return parser


def _exit_code(code: Any) -> int:
    if code is None:
        return EXIT_OK
    return code if isinstance(code, int) else EXIT_USAGE


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ha-guest-client; return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help and on errors; callers of main() want a number.
        return _exit_code(exc.code)
    if args.command == "report" and args.health == "healthy" and args.reason:
        print("%s: error: --reason only goes with unhealthy" % PROG, file=sys.stderr)
        return EXIT_USAGE
    client = AgentClient(args.socket, args.timeout)
    try:
        return int(args.func(client, args))
    except AgentUnavailable as exc:
        print("%s: agent unavailable: %s" % (PROG, exc), file=sys.stderr)
        return EXIT_UNAVAILABLE
    except AgentError as exc:
        print("%s: %s" % (exc.code, exc.detail), file=sys.stderr)
        return EXIT_REFUSED
    except UsageError as exc:
        print("%s: error: %s" % (PROG, exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. "| head"); keep the interpreter from complaining at exit.
        _silence_stdout()
        return EXIT_OK


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
