"""The cloud's service processes: started with their log file, waited for (bounded), stopped at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import IO, Optional

from ha_guest.testing.waiting import wait_for


class CloudError(AssertionError):
    """The cloud could not be brought up (or a step of it failed); the message names the log to read."""


def tail(path: str, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (or a note that it is missing)."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode('utf-8', 'replace')
    except OSError as exc:
        return '(no log: %s)' % exc
    return '\n'.join(text.splitlines()[-lines:])


def run(argv: Sequence[str], log: str, timeout: float, env: Optional[dict[str, str]] = None) -> None:
    """Run one command to its end, output appended to ``log``; fail with the log's tail."""
    with open(log, 'ab') as out:
        out.write(('\n$ %s\n' % ' '.join(argv)).encode())
        out.flush()
        try:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise CloudError('%s did not end within %.0fs; see %s:\n%s' % (argv[0], timeout, log, tail(log))) from None
    if result.returncode != 0:
        raise CloudError('%s failed (exit %d); see %s:\n%s' % (' '.join(argv[:3]), result.returncode, log,
                                                                tail(log)))


class Service:
    """One long-running service process with its own log file."""

    def __init__(self, name: str, argv: Sequence[str], log: str, env: dict[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = env
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._out: Optional[IO[bytes]] = None
        self.started_at = 0.0
        self.ready_s: Optional[float] = None
        #: SIGTERM was sent already: a second one makes oslo.service services exit at once, with status 1.
        self._terminated = False

    def start(self) -> None:
        """Start the process in a session of its own (its workers stop with it)."""
        self._out = open(self.log, 'ab')
        self._terminated = False
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> float:
        """Wait until ``ready()`` holds (failing at once if the process died); return the start-up time."""
        def check() -> bool:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise CloudError('%s exited (%s) while starting; see %s:\n%s' % (self.name, code, self.log,
                                                                                 tail(self.log)))
            try:
                return ready()
            except Exception:
                return False

        wait_for(check, timeout, interval=0.25,
                 message=lambda: '%s to be ready; see %s:\n%s' % (self.name, self.log, tail(self.log)),
                 error=CloudError)
        self.ready_s = time.monotonic() - self.started_at
        return self.ready_s

    def terminate(self) -> None:
        """SIGTERM to the process group, without waiting (stop() waits)."""
        proc = self.proc
        if proc is not None and proc.poll() is None and not self._terminated:
            self._terminated = True
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``timeout``; the log stays."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                try:
                    if not (sig == signal.SIGTERM and self._terminated):
                        os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if proc is not None:
            # Workers left behind by a master that died first (uwsgi): the group goes too.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._out is not None:
            self._out.close()
            self._out = None


def http_ready(url: str, timeout: float = 3.0) -> Callable[[], bool]:
    """A readiness check: any HTTP answer below 500 from ``url``."""
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return bool(resp.status < 500)
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except OSError:
            return False
    return ready


def log_ready(path: str, needle: str) -> Callable[[], bool]:
    """A readiness check: ``needle`` appears in the log file."""
    def ready() -> bool:
        try:
            with open(path, 'rb') as f:
                return needle.encode() in f.read()
        except OSError:
            return False
    return ready
