"""Entry point of the one-file guest build: runs the agent or the client by name or subcommand."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

USAGE = """\
usage: ha-guest.pyz agent [AGENT OPTIONS]     run ha-guest-agent
       ha-guest.pyz client COMMAND [...]      run ha-guest-client
Installed as ha-guest-agent or ha-guest-client (a copy or a symlink), the file runs that program."""

COMMANDS = {"agent": "ha-guest-agent", "client": "ha-guest-client"}


def choose(argv0: str, args: List[str]) -> Optional[str]:
    """Return "agent" or "client" for this invocation (consuming a subcommand), or None."""
    name = os.path.basename(argv0)
    if name.endswith(".pyz"):
        name = name[: -len(".pyz")]
    # The file's own name wins so /usr/local/bin/ha-guest-agent takes agent options directly.
    for command, program in COMMANDS.items():
        if name == program:
            return command
    if args and args[0] in COMMANDS:
        return args.pop(0)
    return None


def main(argv: Optional[List[str]] = None) -> int:
    """Dispatch to the agent's or the client's main(); return the exit code."""
    argv = list(sys.argv if argv is None else argv)
    args = argv[1:]
    command = choose(argv[0] if argv else "", args)
    if command is None:
        print(USAGE, file=sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    # Both mains read sys.argv when given no arguments; argparse then shows the real program name.
    sys.argv = [COMMANDS[command]] + args
    if command == "agent":
        from ha_guest.guest import agent

        return _code(agent.main())
    from ha_guest.guest import cli

    return cli.main(args)


def _code(result: object) -> int:
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
