"""Guest health: check commands, application reports and their aggregation.

Challenges are answered from HealthModel.overall(), which only reads cached
results; checks run in the background and never delay an answer. A check
counts as healthy until its first result. A report with an expiry that is not
renewed in time turns unhealthy with "report from SOURCE expired", so an
application that dies turns the guest unhealthy by itself. The reason of an
unhealthy report is "SOURCE: REASON" (or "SOURCE: unhealthy" without one).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ha_guest.guest.config import CheckConfig
from ha_guest.protocol.heartbeat import HEALTHY, UNHEALTHY
from ha_guest.protocol.limits import MAX_REASON_CHARS

LOG = logging.getLogger(__name__)

Clock = Callable[[], float]

#: Most report sources kept at once; more are refused so apps cannot exhaust memory.
MAX_REPORTS = 256

#: Check output kept for the reason; the rest is read and discarded.
MAX_OUTPUT_BYTES = 4096

# After the shell exits, how long a leftover child may hold its output open.
_OUTPUT_GRACE_S = 0.2
# How long to wait for a killed process group to be reaped.
_REAP_TIMEOUT_S = 2.0


def truncate(reason: str, limit: int = MAX_REASON_CHARS) -> str:
    """Cut a reason to the wire limit."""
    return reason if len(reason) <= limit else reason[:limit]


@dataclass
class _Report:
    health: str
    reason: str
    expires_at: Optional[float]


class ReportLimitError(Exception):
    """Too many report sources are registered."""


class HealthModel:
    """The current health of checks and reports, with expiry on a clock."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._checks: Dict[str, Tuple[str, str]] = {}
        self._reports: Dict[str, _Report] = {}
        self._cache: Optional[Tuple[str, str]] = None
        self._cache_until = 0.0

    def add_check(self, name: str) -> None:
        """Declare a check; it is healthy until its first result."""
        self._checks.setdefault(name, (HEALTHY, ""))
        self._cache = None

    def set_check(self, name: str, healthy: bool, reason: str = "") -> None:
        """Record the latest result of a check."""
        self._checks[name] = (HEALTHY, "") if healthy else (UNHEALTHY, truncate(reason))
        self._cache = None

    def report(self, source: str, health: str, reason: str = "", expires_in_s: Optional[float] = None) -> None:
        """Record an application's report, replacing its previous one."""
        if source not in self._reports and len(self._reports) >= MAX_REPORTS:
            raise ReportLimitError("at most %d report sources" % MAX_REPORTS)
        expires_at = None if expires_in_s is None else self._clock() + expires_in_s
        self._reports[source] = _Report(health, truncate(reason), expires_at)
        self._cache = None

    def clear(self, source: str) -> bool:
        """Forget a source's report; return whether there was one."""
        self._cache = None
        return self._reports.pop(source, None) is not None

    def _report_state(self, source: str, rep: _Report, now: float) -> Tuple[str, str]:
        if rep.expires_at is not None and now >= rep.expires_at:
            return UNHEALTHY, "report from %s expired" % source
        if rep.health == HEALTHY:
            return HEALTHY, ""
        return UNHEALTHY, "%s: %s" % (source, rep.reason or "unhealthy")

    def overall(self) -> Tuple[str, str]:
        """Return (health, reason) of the whole guest; cheap enough per challenge."""
        now = self._clock()
        if self._cache is not None and now < self._cache_until:
            return self._cache
        reasons = [reason for health, reason in self._checks.values() if health == UNHEALTHY]
        next_expiry = float("inf")
        for source, rep in self._reports.items():
            health, reason = self._report_state(source, rep, now)
            if health == UNHEALTHY:
                reasons.append(reason)
            if rep.expires_at is not None and rep.expires_at > now:
                next_expiry = min(next_expiry, rep.expires_at)
        result = (UNHEALTHY, truncate("; ".join(reasons))) if reasons else (HEALTHY, "")
        # Valid until the next report expires; any change resets it.
        self._cache = result
        self._cache_until = next_expiry
        return result

    def checks_snapshot(self) -> List[Dict[str, str]]:
        """Return every check's state for agent_status."""
        return [{"name": name, "health": h, "reason": r} for name, (h, r) in sorted(self._checks.items())]

    def reports_snapshot(self) -> List[Dict[str, object]]:
        """Return every report's state for agent_status."""
        now = self._clock()
        out: List[Dict[str, object]] = []
        for source, rep in sorted(self._reports.items()):
            health, reason = self._report_state(source, rep, now)
            remaining = None if rep.expires_at is None else round(max(0.0, rep.expires_at - now), 3)
            out.append({"source": source, "health": health, "reason": reason, "expires_in_s": remaining})
        return out


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one run of a check command."""

    healthy: bool
    reason: str


def _first_line(output: bytes) -> str:
    for line in output.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass  # Already gone.


class _OutputPipe:
    """A pipe for a check's output, read without blocking and kept bounded.

    Our own pipe rather than asyncio's: Process.wait() of older Pythons also
    waits for asyncio's pipes to close, which a leftover child may delay.
    """

    def __init__(self, limit: int = MAX_OUTPUT_BYTES) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.limit = limit
        self.kept = bytearray()
        self.eof: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
        self._watching = False

    def start(self) -> None:
        """Close our copy of the write end and start reading."""
        os.close(self.write_fd)
        self.write_fd = -1
        asyncio.get_running_loop().add_reader(self.read_fd, self._readable)
        self._watching = True

    def _readable(self) -> None:
        try:
            chunk = os.read(self.read_fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._stop_watching()
            if not self.eof.done():
                self.eof.set_result(None)
            return
        if len(self.kept) < self.limit:
            self.kept += chunk[: self.limit - len(self.kept)]

    def _stop_watching(self) -> None:
        if self._watching:
            asyncio.get_running_loop().remove_reader(self.read_fd)
            self._watching = False

    def close(self) -> None:
        """Release both ends."""
        self._stop_watching()
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.write_fd = -1


async def run_check(check: CheckConfig) -> CheckResult:
    """Run a check command once in its own process group and judge the outcome."""
    pipe = _OutputPipe()
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", check.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=pipe.write_fd,
                stderr=pipe.write_fd,
                # Own session: a timeout kills the shell and everything it started.
                start_new_session=True,
            )
        except OSError as exc:
            return CheckResult(False, "check %s could not start: %s" % (check.name, exc.strerror or exc))
        pipe.start()
        try:
            try:
                await asyncio.wait_for(proc.wait(), check.timeout_s)
            except asyncio.TimeoutError:
                _kill_group(proc.pid)
                await _reap(proc)
                return CheckResult(False, "check %s timed out after %gs" % (check.name, check.timeout_s))
            try:
                await asyncio.wait_for(asyncio.shield(pipe.eof), _OUTPUT_GRACE_S)
            except asyncio.TimeoutError:
                # A leftover child still holds the pipe: it belongs to the check's group.
                _kill_group(proc.pid)
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        output = bytes(pipe.kept)
    finally:
        pipe.close()
    code = proc.returncode
    if code == 0:
        return CheckResult(True, "")
    assert code is not None
    what = "killed by signal %d" % -code if code < 0 else "exited %d" % code
    line = _first_line(output)
    return CheckResult(False, "check %s %s: %s" % (check.name, what, line) if line else
                       "check %s %s" % (check.name, what))


async def _reap(proc: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(proc.wait(), _REAP_TIMEOUT_S)
    except asyncio.TimeoutError:
        LOG.warning("process %d did not exit after SIGKILL", proc.pid)


class CheckRunner:
    """Run every configured check forever, each period_s after its last run ended."""

    def __init__(self, model: HealthModel, checks: List[CheckConfig]) -> None:
        self.model = model
        self.checks = list(checks)
        self.runs = 0
        self._tasks: List["asyncio.Future[None]"] = []
        for check in self.checks:
            model.add_check(check.name)

    def start(self) -> None:
        """Start one task per check."""
        self._tasks = [asyncio.ensure_future(self._loop(check)) for check in self.checks]

    async def stop(self) -> None:
        """Cancel the checks; a running command's process group is killed."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []

    async def _loop(self, check: CheckConfig) -> None:
        previous: Optional[CheckResult] = None
        while True:
            try:
                result = await run_check(check)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broken check must not stop the others
                LOG.exception("check %s failed to run", check.name)
                result = CheckResult(False, "check %s could not run: %s" % (check.name, exc))
            self.runs += 1
            self.model.set_check(check.name, result.healthy, result.reason)
            if previous is None or previous.healthy != result.healthy:
                if result.healthy:
                    LOG.info("check %s is healthy", check.name)
                else:
                    LOG.warning("%s", result.reason)
            previous = result
            await asyncio.sleep(check.period_s)
