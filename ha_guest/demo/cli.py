"""ha-guest-demo's command line: run the story, print the timeline and a summary, clean up always."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Optional

from ha_guest.cmd import prepare_process

DESCRIPTION = ('ha_guest on one machine: real guest agents on emulated channels, the real compute agents and '
               'controller, and a Vitrage entity graph, all without a cloud or a broker. The heartbeat chain '
               '(a hung and an unhealthy guest become alarms in Vitrage), then server group messaging between '
               'an active/standby pair on two compute hosts.')


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    parser = argparse.ArgumentParser(prog='ha-guest-demo', description=DESCRIPTION)
    parser.add_argument('--transport-url', default='fake:/', metavar='URL',
                        help='oslo.messaging transport between the services (default: %(default)s, '
                             'in-process; e.g. rabbit://guest:guest@127.0.0.1:5672/ for a real broker)')
    parser.add_argument('--interval-ms', type=int, default=100, metavar='MS',
                        help='heartbeat interval the guests ask for (default %(default)s)')
    parser.add_argument('--no-vitrage', action='store_true',
                        help='leave the Vitrage entity graph out (when vitrage is not installed)')
    parser.add_argument('--keep', action='store_true', help='keep the temporary folder (logs) afterwards')
    return parser


def _print_summary(demo: object, tl: object, started: float) -> None:
    from ha_guest.demo.scenario import Demo
    from ha_guest.demo.timeline import Timeline

    assert isinstance(demo, Demo) and isinstance(tl, Timeline)
    columns = ['compute agent', 'notification'] + (['Vitrage graph'] if demo.vitrage else [])
    tl.heading('latencies (ms after the trigger)')
    print('%-40s%s' % ('', ''.join('%16s' % c for c in columns)))
    for label, row in demo.latencies:
        print('%-40s%s' % (label, ''.join('%16.0f' % (value * 1000.0) for value in row if value is not None)))
    print('(compute agent: when it detected the change; notification: when the controller\'s notification '
          'reached a listener%s)' % ('; Vitrage graph: when the alarm and the instance state changed in the '
                                    'entity graph' if demo.vitrage else ''))
    print('\ndemo passed in %.1f s: heartbeats flowed, a hang and an unhealthy report became faults%s, both '
          'recovered, clean exits raised nothing; the standby heard its peer\'s broadcast and its power-off '
          'across two compute hosts' % (time.monotonic() - started,
                                                     ' and Vitrage alarms' if demo.vitrage else ''))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return '\n'.join(handle.read().splitlines()[-lines:])
    except OSError:
        return '(no log at %s)' % path


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; return 0 when every expected event happened in time."""
    args = build_parser().parse_args(argv)
    if args.interval_ms < 100:
        print('ha-guest-demo: --interval-ms must be at least 100', file=sys.stderr)
        return 2
    prepare_process()  # before anything imports oslo.messaging, as the services' mains do
    from ha_guest.demo.scenario import Demo
    from ha_guest.demo.timeline import DemoFailed, Timeline

    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: clean up, then exit
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix='ha-guest-demo-')
    tl = Timeline()
    print(DESCRIPTION)
    demo = Demo(tmp, args.transport_url, args.interval_ms, not args.no_vitrage, tl)
    status = 1
    try:
        demo.setup()
        demo.heartbeats()
        demo.hang()
        demo.unhealthy()
        demo.recover()
        demo.clean_exit()
        demo.server_group_messaging()
        demo.stop_guests()
        status = 0
    except DemoFailed as exc:
        print('\ndemo FAILED: %s' % exc, file=sys.stderr)
    except KeyboardInterrupt:
        print('\ninterrupted; cleaning up', file=sys.stderr)
        status = 130
    except Exception as exc:  # noqa: BLE001 - say what broke, clean up, exit 1
        print('\ndemo FAILED: %s: %s' % (type(exc).__name__, exc), file=sys.stderr)
    finally:
        if status == 1:
            print(demo.guests.log_tail(), file=sys.stderr)
            if os.path.exists(demo.log_file):
                print('--- services log (%s), last lines ---\n%s' % (demo.log_file, _tail(demo.log_file)),
                      file=sys.stderr)
        demo.cleanup()
        if args.keep:
            print('logs kept in %s' % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if status == 0:
        _print_summary(demo, tl, started)
    return status


if __name__ == '__main__':
    sys.exit(main())
