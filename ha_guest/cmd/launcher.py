"""Run one oslo.service ServiceBase in this process: SIGTERM/SIGINT stop it, SIGHUP reloads.

Why not oslo.service's own launcher: with the threading backend (4.8),
``oslo_service.service.launch(conf, service)`` hands even one worker to a
cotyledon ServiceManager, which forks: a master plus a worker process, and on
SIGHUP the worker is stopped and a fresh one forked (cotyledon's default
``reload``), so the compute agent would drop every guest channel on each
reload. ``ProcessLauncher(no_fork=True)`` runs in one process but turns SIGHUP
into SystemExit (the process dies) and SIGINT into ``os._exit(1)`` (no flush,
no state saved). This launcher keeps the ServiceBase contract and the
oslo.config reload (``conf.mutate_config_files``) and runs on native threads.
"""

from __future__ import annotations

import logging as std_logging
import os
import select
import signal
import socket
import sys
import time
from typing import Any, Optional

from oslo_config import cfg
from oslo_log import log as logging
from oslo_service.backend.base import ServiceBase

LOG = logging.getLogger(__name__)

#: Signals that stop the service; a second one while it stops exits at once.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP


def version_string() -> str:
    """Return ha_guest's version as pbr knows it (package metadata or git)."""
    try:
        import pbr.version

        return str(pbr.version.VersionInfo('ha_guest').version_string())
    except Exception:  # noqa: BLE001 - an unknown version must not stop a service
        return 'unknown'


def sd_notify(message: str) -> bool:
    """Send ``message`` to systemd's NOTIFY_SOCKET (Type=notify units); False when not under systemd."""
    address = os.environ.get('NOTIFY_SOCKET')
    if not address:
        return False
    if address.startswith('@'):  # an abstract socket
        address = '\0' + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode('utf-8'))
    except OSError as exc:
        LOG.warning('cannot notify systemd (%s): %s', message.split('\n')[0], exc)
        return False
    return True


def log_start(conf: cfg.ConfigOpts, prog: str) -> None:
    """Log the version and every option's value (secrets masked), as OpenStack services do at start."""
    LOG.info('%s %s starting (pid %d, Python %s)', prog, version_string(), os.getpid(), sys.version.split()[0])
    conf.log_opt_values(LOG, std_logging.INFO)


class Launcher:
    """Runs ``service`` in the calling (main) thread until SIGTERM or SIGINT; SIGHUP reloads.

    Signal handlers do nothing but wake the main thread through a socket
    (``signal.set_wakeup_fd``): starting, stopping and reloading run there, in
    ordinary code, never inside a handler that may interrupt a lock holder.
    """

    def __init__(self, conf: cfg.ConfigOpts, service: ServiceBase, prog: str) -> None:
        self.conf = conf
        self.service = service
        self.prog = prog
        self._reader, self._writer = socket.socketpair()
        self._previous: dict[int, Any] = {}
        self._old_wakeup_fd: Optional[int] = None
        self.reloads = 0

    def run(self) -> int:
        """Start the service, serve signals until asked to stop, stop it; return the exit status."""
        self._install()
        try:
            try:
                self.service.start()
            except Exception as exc:  # noqa: BLE001 - say why and exit, e.g. a driver that cannot load
                LOG.error('%s cannot start: %s', self.prog, exc, exc_info=LOG.isEnabledFor(std_logging.DEBUG))
                self._stop_service()
                return 1
            sd_notify('READY=1\nSTATUS=running\nMAINPID=%d' % os.getpid())
            LOG.info('%s started', self.prog)
            signum = self._serve()
            LOG.info('%s received, stopping', signal.Signals(signum).name)
            sd_notify('STOPPING=1')
            self._stop_service()
            LOG.info('%s stopped', self.prog)
            return 0
        finally:
            self._uninstall()

    def reload(self) -> None:
        """Re-read the config files: mutable options (oslo.log's debug...) change, the others stay."""
        # RELOADING=1 then READY=1: systemctl reload waits for the pair (Type=notify-reload
        # needs MONOTONIC_USEC; plain Type=notify ignores it).
        sd_notify('RELOADING=1\nMONOTONIC_USEC=%d' % (time.monotonic_ns() // 1000))
        try:
            changed = self.conf.mutate_config_files()
        except Exception as exc:  # noqa: BLE001 - a broken file keeps the running configuration
            LOG.error('SIGHUP: cannot reload the configuration, keeping the running one: %s', exc)
        else:
            self.reloads += 1
            names = sorted('%s.%s' % (group or 'DEFAULT', name) for group, name in changed)
            LOG.info('SIGHUP: configuration reloaded; %s', 'changed: %s' % ', '.join(names) if names
                     else 'no mutable option changed')
            # With debug on (perhaps just switched on), the values now in force.
            self.conf.log_opt_values(LOG, std_logging.DEBUG)
            try:
                self.service.reset()
            except Exception:  # noqa: BLE001 - a reload never stops the service
                LOG.exception('SIGHUP: %s could not apply the reloaded options', self.prog)
        sd_notify('READY=1\nSTATUS=running (reloaded)')

    def _serve(self) -> int:
        """Wait for signals; reload on SIGHUP; return the signal that asked to stop."""
        while True:
            readable, _, _ = select.select([self._reader], [], [], None)
            if not readable:
                continue
            for signum in self._reader.recv(64):
                if signum in STOP_SIGNALS:
                    return signum
                if signum == RELOAD_SIGNAL:
                    self.reload()

    def _stop_service(self) -> None:
        # A second SIGTERM/SIGINT while stopping exits at once: stop is bounded, but an
        # operator's second Ctrl-C must not wait for it.
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._exit_now)
        self.service.stop()
        self.service.wait()

    @staticmethod
    def _exit_now(signum: int, frame: Any) -> None:
        os.write(2, b'second stop signal while stopping: exiting at once\n')
        os._exit(1)

    def _install(self) -> None:
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._old_wakeup_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for signum in (*STOP_SIGNALS, RELOAD_SIGNAL):
            # The handler does nothing: the wakeup fd carries the signal number to _serve().
            self._previous[signum] = signal.signal(signum, lambda *_: None)

    def _uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(self._old_wakeup_fd if self._old_wakeup_fd is not None else -1)
        self._reader.close()
        self._writer.close()
