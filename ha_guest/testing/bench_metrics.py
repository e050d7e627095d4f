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
import statistics
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
    """Restart the agent with metrics on and off in turns, measure each window, report the difference."""

    def __init__(self, bench: Any) -> None:
        self.bench = bench
        self.scraper: Optional[Scraper] = None
        self.durations: list[float] = []
        self.sizes: list[int] = []
        self.failures = 0
        #: Every measured window: metrics on or off, after a restart or not, CPU %, CPU µs per answer.
        self.windows: list[dict[str, Any]] = []

    def run(self) -> None:
        """After bench._steady_state() measured the agent without metrics: windows with, without, with, ...

        ``--metrics-rounds N`` (default 1) measures N windows with metrics and, from the second
        round on, a window without before each, every one of them after a restart: the restart
        alone moved the agent's CPU by points (doc/source/demo-and-benchmark.rst), so the paired
        deltas of rounds 2.. compare restarted agents only, in alternation, so that drift of the
        machine's other load shows as spread rather than as a cost.
        """
        bench, args = self.bench, self.bench.args
        before = bench.result['agent_cpu_percent']
        self.windows.append({'metrics': False, 'restarted': False, 'cpu_percent': before,
                             'cpu_us_per_answer': _per_answer(before, bench.result['answers_per_s'])})
        after = self._window(metrics=True)
        for _ in range(1, args.metrics_rounds):
            self._window(metrics=False)
            self._window(metrics=True)
        bench.result.update({
            'agent_cpu_percent_metrics': after,
            'agent_cpu_metrics_delta_points': round(after - before, 1),
            'scrape_period_s': args.scrape_s,
            'metrics_windows': self.windows,
        })
        paired = [round(self.windows[i + 1]['cpu_percent'] - self.windows[i]['cpu_percent'], 1)
                  for i in range(2, len(self.windows) - 1, 2)]
        if paired:
            bench.result['agent_cpu_metrics_paired_delta_points'] = paired
            bench.result['agent_cpu_metrics_paired_delta_median_points'] = statistics.median(paired)
            bench.log('metrics on minus off, restarted agents, %d pairs: %s points (median %+.1f)' % (
                len(paired), ', '.join('%+.1f' % d for d in paired), statistics.median(paired)))

    def _window(self, metrics: bool) -> float:
        """Restart the agent with or without a metrics port, warm up, measure one window; return its CPU %."""
        bench, args = self.bench, self.bench.args
        if self.scraper is not None:
            self._keep_scraper()
        bench.log('restarting the compute agent %s [metrics] listen_port' % ('with' if metrics else 'without'))
        bench.services['compute'].stop()
        port = free_port()
        bench._start_compute(**({'metrics': {'listen_port': port}} if metrics else {}))
        bench.log('warm-up %.0f s' % args.warmup_s)
        time.sleep(args.warmup_s)
        meter = CpuMeter({'agent': bench.services['compute'].pid})
        answered0 = sum(h.ask('status')['answered'] for h in bench.helpers)
        load = os.getloadavg()[0]
        meter.start()
        if metrics:
            self.scraper = Scraper('http://127.0.0.1:%d/metrics' % port, args.scrape_s)
            self.scraper.start()  # its first scrape at the window's start
        time.sleep(args.steady_s)
        meter.stop()
        rate = (sum(h.ask('status')['answered'] for h in bench.helpers) - answered0) / meter.seconds
        bench.services['compute'].check()
        if metrics and self.scraper is not None and not self.scraper.durations:
            raise BenchError('no scrape of %s succeeded' % self.scraper.url)
        cpu = meter.percent['agent']
        self.windows.append({'metrics': metrics, 'restarted': True, 'cpu_percent': cpu,
                             'cpu_us_per_answer': _per_answer(cpu, rate), 'answers_per_s': round(rate),
                             'load_average_1m': round(load, 2)})
        if metrics:
            bench.result.update({'answers_per_s_metrics': round(rate),
                                 'load_average_1m_metrics_window': round(load, 2)})
        bench.log('%s metrics: agent %.1f %% of a core, %.1f µs per answer' % (
            'with' if metrics else 'without', cpu, _per_answer(cpu, rate) or 0.0))
        return cpu

    def _keep_scraper(self) -> None:
        """Stop the current scraper and keep its timings for the totals."""
        assert self.scraper is not None
        self.scraper.stop()
        self.durations += self.scraper.durations
        self.sizes += self.scraper.sizes
        self.failures += self.scraper.failures
        self.scraper = None

    def finish(self) -> Optional[str]:
        """Stop scraping after one last scrape; record the scrape figures; return the last scrape's text."""
        if self.scraper is None:
            return None
        self.scraper.scrape()
        last = self.scraper.last
        self._keep_scraper()
        durations = self.durations
        self.bench.result.update({
            'scrapes': len(durations), 'scrape_failures': self.failures,
            'scrape_ms_mean': round(1000.0 * sum(durations) / len(durations), 1) if durations else None,
            'scrape_ms_max': round(1000.0 * max(durations), 1) if durations else None,
            'scrape_bytes': self.sizes[-1] if self.sizes else None,
        })
        return last


def _per_answer(cpu_percent: float, answers_per_s: float) -> Optional[float]:
    """CPU microseconds per answer: the agent's CPU normalised by the answer rate it served."""
    return round(cpu_percent * 1e4 / answers_per_s, 1) if answers_per_s else None
