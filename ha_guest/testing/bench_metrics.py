"""The benchmark's ``--metrics``: the compute agent's CPU without, then with, its metrics endpoint scraped.

The agent first runs without ``[metrics]`` (the steady-state window of
bench.py measures it); it is then restarted with a metrics port, the guests
reconnect and register again, and after the warm-up the same window is
measured while a scraper of this process does what Prometheus does: GET
/metrics every ``--scrape-s`` seconds (15 by default), the first at the
window's start. The difference is what the metrics cost: the answer latency
histogram fed on every answer, and the scrapes. The scraper keeps going
through the hangs; its last scrape feeds the answer latency plot.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from typing import Any, Optional

from ha_guest.testing.bench_procs import BenchError, CpuMeter

SCRAPE_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return int(probe.getsockname()[1])


class Scraper:
    """GETs one metrics URL every ``period_s`` in a thread, like Prometheus; keeps timings and the last text."""

    def __init__(self, url: str, period_s: float) -> None:
        self.url = url
        self.period_s = period_s
        self.durations: list[float] = []
        self.sizes: list[int] = []
        self.failures = 0
        self.last = ''
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='bench-scraper', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def scrape(self) -> None:
        """One scrape now (also called by the thread)."""
        started = time.monotonic()
        try:
            with urllib.request.urlopen(self.url, timeout=SCRAPE_TIMEOUT_S) as response:
                body = response.read()
        except OSError:
            self.failures += 1
            return
        self.durations.append(time.monotonic() - started)
        self.sizes.append(len(body))
        self.last = body.decode('utf-8')

    def _run(self) -> None:
        while not self._stop.is_set():
            self.scrape()
            self._stop.wait(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(SCRAPE_TIMEOUT_S + 1.0)


class MetricsPhase:
    """Restart the agent with metrics on, measure it under scrapes, report the difference."""

    def __init__(self, bench: Any) -> None:
        self.bench = bench
        self.scraper: Optional[Scraper] = None

    def run(self) -> None:
        """After bench._steady_state() measured the agent without metrics: restart it with them, measure again."""
        bench, args = self.bench, self.bench.args
        before = bench.result['agent_cpu_percent']
        bench.log('restarting the compute agent with [metrics] listen_port')
        bench.services['compute'].stop()
        port = free_port()
        bench._start_compute(metrics={'listen_port': port})
        bench.log('warm-up %.0f s' % args.warmup_s)
        time.sleep(args.warmup_s)
        self.scraper = Scraper('http://127.0.0.1:%d/metrics' % port, args.scrape_s)
        meter = CpuMeter({'agent': bench.services['compute'].pid})
        answered0 = sum(h.ask('status')['answered'] for h in bench.helpers)
        load = os.getloadavg()[0]
        meter.start()
        self.scraper.start()  # its first scrape at the window's start
        time.sleep(args.steady_s)
        meter.stop()
        answered = sum(h.ask('status')['answered'] for h in bench.helpers) - answered0
        bench.services['compute'].check()
        if not self.scraper.durations:
            raise BenchError('no scrape of %s succeeded' % self.scraper.url)
        after = meter.percent['agent']
        bench.result.update({
            'agent_cpu_percent_metrics': after,
            'agent_cpu_metrics_delta_points': round(after - before, 1),
            'answers_per_s_metrics': round(answered / meter.seconds),
            'load_average_1m_metrics_window': round(load, 2),
            'scrape_period_s': args.scrape_s,
        })
        bench.log('with metrics scraped every %.0f s: agent %.1f %% of a core (%+.1f points)' % (
            args.scrape_s, after, after - before))

    def finish(self) -> Optional[str]:
        """Stop scraping after one last scrape; record the scrape figures; return the last scrape's text."""
        if self.scraper is None:
            return None
        self.scraper.scrape()
        self.scraper.stop()
        durations = self.scraper.durations
        self.bench.result.update({
            'scrapes': len(durations), 'scrape_failures': self.scraper.failures,
            'scrape_ms_mean': round(1000.0 * sum(durations) / len(durations), 1) if durations else None,
            'scrape_ms_max': round(1000.0 * max(durations), 1) if durations else None,
            'scrape_bytes': self.scraper.sizes[-1] if self.scraper.sizes else None,
        })
        return self.scraper.last
