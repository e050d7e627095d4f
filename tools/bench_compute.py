"""Micro-benchmark of the compute agent's event loop: CPU at N guests.

Runs a ComputeManager in this process (directory discovery, a counting fake
controller) and N protocol guests in a child process. Each guest listens on
``<uuid>.sock`` like QEMU does, so the compute agent connects to it as it
would to QEMU, and answers hello, registers and answers every challenge; the
child's CPU is not counted. Prints one JSON line: the compute process's CPU
as a percentage of one core (all its threads; user and system), the guest
process's CPU, misses and faults while everybody answers (false alarms, should
be 0), and the event loop's lag. With ``--hang K`` it then makes K guests stop
answering and reports how long detection took (hang -> fault, p50/p99/max).

    python tools/bench_compute.py --guests 1000 --interval-ms 100 --seconds 10 --hang 100

The full chain benchmark (real guest agents, RabbitMQ, controller) is
``tox -e bench``; this one is for working on the agent's hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, Dict, List, Optional

from ha_guest.protocol import GUEST, ChannelCodec, heartbeat
from ha_guest.protocol.messages import Hello, HelloAck


class _FakeGuest(asyncio.Protocol):
    """QEMU's socket and a guest agent in one: answers challenges at once."""

    def __init__(self, interval_ms: int) -> None:
        self.interval_ms = interval_ms
        self.codec = ChannelCodec(GUEST)
        self.transport: Optional[asyncio.Transport] = None
        self.buf = b""
        self.response = b""
        self.hung = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        out = []
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            start = line.find(b'"nonce":"')
            if start > 0 and b'"challenge"' in line:
                if self.hung:
                    continue
                nonce = line[start + 9:line.index(b'"', start + 9)]
                out.append(self.response % (self.codec.next_seq(), nonce))
                continue
            for item in self.codec.feed(line + b"\n"):
                if isinstance(item, Exception):
                    continue
                if isinstance(item.message, Hello):
                    session = self.codec.session
                    self.response = (
                        '{"v":1,"app":"heartbeat","type":"response","seq":%%d,"session":"%s",'
                        '"data":{"nonce":"%%s","health":"healthy","reason":""}}\n' % session).encode()
                    for message in (HelloAck(1, "bench"), heartbeat.Init(self.interval_ms)):
                        out.append(self.codec.encode(message))
        if out:
            self.transport.write(b"".join(out))


async def _serve(folder: str, count: int, interval_ms: int) -> None:
    loop = asyncio.get_running_loop()
    guests: List[_FakeGuest] = []

    def make() -> _FakeGuest:
        guest = _FakeGuest(interval_ms)
        guests.append(guest)
        return guest

    for _ in range(count):
        path = os.path.join(folder, "%s.sock" % uuid.uuid4())
        await loop.create_unix_server(make, path, backlog=1)
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        # "hang K": the first K guests stop answering (at random points of their cadence).
        for guest in guests[: int(line.split()[1])]:
            guest.hung = True
        print(time.time(), flush=True)


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve_guests(folder: str, count: int, interval_ms: int) -> None:
    """Child process: serve ``count`` fake guests in ``folder`` until killed."""
    _raise_fd_limit()
    asyncio.run(_serve(folder, count, interval_ms))


class _CountingController:
    def __init__(self) -> None:
        self.calls: Dict[str, List[Dict[str, Any]]] = {}

    def _record(self, name: str, payload: Dict[str, Any]) -> Dict[str, bool]:
        self.calls.setdefault(name, []).append(payload)
        return {"duplicate": False}

    def report_fault(self, ctxt: Any, fault: Dict[str, Any]) -> Dict[str, bool]:
        return self._record("report_fault", fault)

    def report_recovery(self, ctxt: Any, recovery: Dict[str, Any]) -> Dict[str, bool]:
        return self._record("report_recovery", recovery)

    def report_exit(self, ctxt: Any, exit: Dict[str, Any]) -> Dict[str, bool]:
        return self._record("report_exit", exit)

    def report_state(self, ctxt: Any, report: Dict[str, Any]) -> Dict[str, bool]:
        return self._record("report_state", report)


def _cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _lag_probe(manager: Any, samples: List[float]) -> None:
    loop = manager.loop
    period = 0.05

    def probe(expected: float) -> None:
        now = loop.time()
        samples.append(now - expected)
        loop.call_at(now + period, probe, now + period)

    loop.call_soon_threadsafe(lambda: loop.call_later(period, probe, loop.time() + period))


def run(guests: int, interval_ms: int, seconds: float, tick_ms: int, hang: int = 0,
        pin: bool = False) -> Dict[str, Any]:
    """Start guests and a compute agent; measure; return the figures."""
    from ha_guest.cmd import prepare_process

    prepare_process()  # before oslo.messaging, as the service main does
    from oslo_config import cfg

    from ha_guest.compute.manager import ComputeManager
    from ha_guest.conf import compute as compute_conf
    from ha_guest.conf import default as default_conf

    _raise_fd_limit()
    tmp = tempfile.mkdtemp(prefix="hcbench")
    folder = os.path.join(tmp, "channels")
    os.mkdir(folder)
    child = subprocess.Popen([sys.executable, __file__, "--serve", folder, "--guests", str(guests),
                              "--interval-ms", str(interval_ms)], stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    manager = None
    cpus = sorted(os.sched_getaffinity(0))
    if pin and len(cpus) > 1:
        # One core each, so that neither side's scheduling noise lands in the other's figure.
        os.sched_setaffinity(0, {cpus[0]})
        os.sched_setaffinity(child.pid, {cpus[1]})
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != b"ready":
            raise RuntimeError("guest process failed")
        conf = cfg.ConfigOpts()
        compute_conf.register_opts(conf)
        default_conf.register_opts(conf)
        conf([])
        for name, value in (("discovery_driver", "directory"), ("directory_path", folder),
                            ("state_file", os.path.join(tmp, "state.json")), ("tick_ms", tick_ms)):
            conf.set_override(name, value, "compute")
        controller = _CountingController()
        manager = ComputeManager(conf, controller, host="bench")
        manager.start()
        deadline = time.monotonic() + 60
        while manager.call(lambda: sum(1 for i in manager.instances.values() if i.monitor.interval_ms)) < guests:
            if time.monotonic() > deadline:
                raise RuntimeError("guests did not register within 60 s")
            time.sleep(0.2)
        time.sleep(2 * interval_ms / 1000.0 + 1.0)  # settle
        lag: List[float] = []
        _lag_probe(manager, lag)
        before = manager.call(manager.stats)
        cpu0, wall0, child0 = time.process_time(), time.monotonic(), _cpu_seconds(child.pid)
        times0 = os.times()
        time.sleep(seconds)
        cpu1, wall1, child1 = time.process_time(), time.monotonic(), _cpu_seconds(child.pid)
        times1 = os.times()
        after = manager.call(manager.stats)
        max_rtt = manager.call(lambda: max(i.monitor.stats.max_rtt for i in manager.instances.values()))
        false_alarms = len(controller.calls.get("report_fault", []))
        detection: List[float] = []
        if hang:
            assert child.stdin is not None
            child.stdin.write(b"hang %d\n" % hang)
            child.stdin.flush()
            hung_at = float(child.stdout.readline())
            deadline = time.monotonic() + 10
            while len(controller.calls.get("report_fault", [])) < false_alarms + hang:
                if time.monotonic() > deadline:
                    raise RuntimeError("hung guests were not all detected within 10 s")
                time.sleep(0.05)
            detection = sorted(f["detected_at"] - hung_at for f in controller.calls["report_fault"][false_alarms:])
        lag.sort()
        return {
            "guests": guests, "interval_ms": interval_ms, "tick_ms": tick_ms, "seconds": round(wall1 - wall0, 2),
            "agent_cpu_percent": round(100.0 * (cpu1 - cpu0) / (wall1 - wall0), 1),
            "agent_user_percent": round(100.0 * (times1.user - times0.user) / (wall1 - wall0), 1),
            "agent_system_percent": round(100.0 * (times1.system - times0.system) / (wall1 - wall0), 1),
            "challenges_per_s": round((after["challenges"] - before["challenges"]) / (wall1 - wall0)),
            "guests_process_cpu_percent": round(100.0 * (child1 - child0) / (wall1 - wall0), 1),
            "misses": after["misses"] - before["misses"],
            "max_rtt_ms": round(1000 * max_rtt, 1),
            "false_alarms": false_alarms,
            "hung": hang,
            "detection_p50_ms": round(1000 * detection[len(detection) // 2]) if detection else None,
            "detection_p99_ms": round(1000 * detection[int(len(detection) * 0.99)]) if detection else None,
            "detection_max_ms": round(1000 * detection[-1]) if detection else None,
            "loop_lag_p50_ms": round(1000 * lag[len(lag) // 2], 2) if lag else None,
            "loop_lag_p99_ms": round(1000 * lag[int(len(lag) * 0.99)], 2) if lag else None,
        }
    finally:
        if manager is not None:
            manager.stop(flush_timeout=0.5)
        child.kill()
        child.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=1000)
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tick-ms", type=int, default=10)
    parser.add_argument("--hang", type=int, default=0, help="after measuring, hang this many guests and "
                        "measure detection latency")
    parser.add_argument("--pin", action="store_true", help="run the agent and the guests on one core each")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_guests(args.serve, args.guests, args.interval_ms)
        return 0
    print(json.dumps(run(args.guests, args.interval_ms, args.seconds, args.tick_ms, args.hang, args.pin)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
