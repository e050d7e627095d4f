"""The benchmark's processes: services, guest helpers, CPU counters and the fault notification listener."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

_TICKS = os.sysconf('SC_CLK_TCK')


class BenchError(Exception):
    """The benchmark could not run (a process died, something did not happen in time)."""


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    with open('/proc/%d/stat' % pid, encoding='ascii') as handle:
        stat = handle.read()
    # The command name is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(')') + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def find_process(name: str) -> Optional[int]:
    """Return the pid of a process whose command name is ``name`` (e.g. RabbitMQ's beam.smp), if any."""
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/comm' % entry, encoding='utf-8') as handle:
                    if handle.read().strip() == name:
                        return int(entry)
            except OSError:
                continue
    return None


class Service:
    """An ha_guest service process (``python -m module --config-file ...``), output in a log file."""

    def __init__(self, name: str, module: str, config: str, log_path: str) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, 'ab') as log:
            self.proc = subprocess.Popen([sys.executable, '-m', module, '--config-file', config],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        """Raise BenchError if the process has ended."""
        if self.proc.poll() is not None:
            raise BenchError('%s exited with status %s:\n%s' % (self.name, self.proc.returncode, self.tail()))

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM, wait, SIGKILL if needed; return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        return self.proc.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, encoding='utf-8', errors='replace') as handle:
                return '\n'.join(handle.read().splitlines()[-lines:])
        except OSError:
            return ''


class HelperProcess:
    """A helper process of the benchmark driven over its pipes: one JSON answer line per command line."""

    def __init__(self, index: int, argv: list[str], log_path: str) -> None:
        self.index = index
        self.log_path = log_path
        with open(log_path, 'ab') as log:
            self.proc = subprocess.Popen([sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, start_new_session=True)
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def write(self, command: str) -> None:
        """Send one command line; read() its answer later (several helpers work at once)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(command.encode() + b'\n')
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise BenchError('guest helper %d is gone' % self.index) from None

    def read(self) -> dict[str, Any]:
        """Return the next answer line."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError('guest helper %d exited (status %s)' % (self.index, self.proc.poll()))
        return dict(json.loads(line))

    def ask(self, command: str) -> dict[str, Any]:
        """Send one command line and return the answer (thread-safe)."""
        with self._lock:
            self.write(command)
            return self.read()

    def stop(self) -> None:
        """Close its stdin (it exits), kill it if it lingers."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(5.0)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5.0)


class GuestHelper(HelperProcess):
    """One ha_guest.testing.bench_guests process serving many guests."""

    def __init__(self, index: int, folder: str, count: int, interval_ms: int, log_path: str) -> None:
        super().__init__(index, ['-m', 'ha_guest.testing.bench_guests', '--folder', folder, '--guests', str(count),
                                 '--interval-ms', str(interval_ms)], log_path)
        self.uuids: list[str] = []

    def read_ready(self) -> list[str]:
        """Wait for the helper to bind its sockets; return its guests' instance UUIDs."""
        self.uuids = list(self.read()['ready'])
        return self.uuids


def run_main(bench: Any, print_result: Callable[[dict[str, Any], str], None], args: Any) -> int:
    """Run a benchmark, print its table, write its JSON; clean up always; return the exit status."""
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: the finally clause stops every process
    try:
        result = bench.run()
    except KeyboardInterrupt:
        print('benchmark interrupted', file=sys.stderr)
        return 130
    except BenchError as exc:
        print('benchmark FAILED: %s' % exc, file=sys.stderr)
        for service in bench.services.values():
            print('--- %s log, last lines ---\n%s' % (service.name, service.tail()), file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    print_result(result, args.transport_url)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as handle:
            json.dump(result, handle, indent=2, sort_keys=True)
            handle.write('\n')
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class FaultListener:
    """Notification endpoint on the controller's notifications sink topic: arrival time of every event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[float, str, dict[str, Any]]] = []

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any) -> None:
        """Record (arrival wall time, event type, payload)."""
        arrived = time.time()
        if isinstance(payload, dict):
            with self._lock:
                self.events.append((arrived, event_type, payload))

    def of(self, event_type: str) -> list[tuple[float, dict[str, Any]]]:
        """Return (arrival, payload) of every event of one type so far."""
        with self._lock:
            return [(t, p) for t, e, p in self.events if e == event_type]


class CpuMeter:
    """CPU seconds of several processes between start() and stop(), as % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self._t0 = 0.0
        self.percent: dict[str, float] = {}
        self.seconds = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.seconds = time.monotonic() - self._t0
        for name, pid in self.pids.items():
            used = cpu_seconds(pid) - self._start[name]
            self.percent[name] = round(100.0 * used / self.seconds, 1)


def system_cpu() -> tuple[float, float]:
    """Return (busy, total) jiffies of all cores from /proc/stat."""
    with open('/proc/stat', encoding='ascii') as handle:
        fields = [float(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


class CpuSampler:
    """Samples the CPU of some processes and of the whole machine every ``period`` s, in a thread."""

    def __init__(self, pids: dict[str, int], period: float = 1.0) -> None:
        self.pids = pids
        self.period = period
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='cpu-sampler', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2 * self.period)

    def _run(self) -> None:
        t0 = time.monotonic()
        last_t, last = t0, self._read()
        while not self._stop.wait(self.period):
            now, current = time.monotonic(), self._read()
            span = now - last_t
            sample = {'t': round(now - t0, 1)}
            for name in self.pids:
                if name in current and name in last:
                    sample[name] = round(100.0 * (current[name] - last[name]) / span, 1)
            busy = current['_busy'] - last['_busy']
            total = current['_total'] - last['_total']
            sample['machine'] = round(100.0 * busy / total, 1) if total else 0.0  # % of all cores
            self.samples.append(sample)
            last_t, last = now, current

    def _read(self) -> dict[str, float]:
        values = {}
        for name, pid in self.pids.items():
            try:
                values[name] = cpu_seconds(pid)
            except OSError:
                continue
        values['_busy'], values['_total'] = system_cpu()
        return values
