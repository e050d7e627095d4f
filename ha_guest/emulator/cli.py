"""ha-guest-channel-emulator: serve emulated virtio-serial channels until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from ha_guest.emulator.channel import DEFAULT_QUEUE_LIMIT, ChannelEmulator
from ha_guest.emulator.multi import MultiChannelEmulator

LOG = logging.getLogger('ha_guest.emulator')


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    parser = argparse.ArgumentParser(
        prog='ha-guest-channel-emulator',
        description='Emulate QEMU virtio-serial channels: bind the host-side UNIX socket as QEMU does and '
                    'offer the guest side as a second UNIX socket (for ha-guest-agent --device).')
    many = parser.add_argument_group('many instances (sockets named <instance>.sock)')
    many.add_argument('--host-dir', help='folder for the host-side sockets')
    many.add_argument('--guest-dir', help='folder for the guest-side sockets')
    many.add_argument('--instance', action='append', default=[], metavar='UUID',
                      help='instance UUID; repeat for more instances')
    one = parser.add_argument_group('one channel')
    one.add_argument('--host-socket', metavar='PATH', help='host-side socket path')
    one.add_argument('--guest-socket', metavar='PATH', help='guest-side socket path')
    parser.add_argument('--queue-limit', type=int, default=DEFAULT_QUEUE_LIMIT, metavar='BYTES',
                        help='bytes queued per direction before reading stops (default %(default)s)')
    parser.add_argument('--debug', action='store_true', help='log at debug level')
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    single = args.host_socket is not None or args.guest_socket is not None
    multi = args.host_dir is not None or args.guest_dir is not None or bool(args.instance)
    if single and multi:
        parser.error('use either --host-socket/--guest-socket or --host-dir/--guest-dir/--instance')
    if single and (args.host_socket is None or args.guest_socket is None):
        parser.error('--host-socket and --guest-socket go together')
    if not single and (args.host_dir is None or args.guest_dir is None or not args.instance):
        parser.error('give --host-dir, --guest-dir and at least one --instance (or --host-socket/--guest-socket)')
    if args.queue_limit < 1:
        parser.error('--queue-limit must be positive')


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    if args.host_socket is not None:
        channel = ChannelEmulator(args.host_socket, args.guest_socket, queue_limit=args.queue_limit)
        try:
            await channel.start()
            await stopping.wait()
        finally:
            await channel.stop()
    else:
        channels = MultiChannelEmulator(args.host_dir, args.guest_dir, queue_limit=args.queue_limit)
        try:
            for instance in args.instance:
                await channels.add(instance)
            await stopping.wait()
        finally:
            await channels.stop()
    LOG.info('stopped')


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGTERM or SIGINT; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    try:
        asyncio.run(_serve(args))
    except (OSError, ValueError) as exc:
        LOG.error('%s', exc)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
