"""The benchmark's figures: percentiles and the printed table."""

from __future__ import annotations

import math
import urllib.parse
from typing import Any, Optional


def percentile(values: list[float], q: float) -> Optional[float]:
    """Nearest-rank percentile (q in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def safe_url(url: str) -> str:
    """Return a transport URL without its credentials."""
    parts = urllib.parse.urlsplit(url)
    return parts._replace(netloc=','.join(host.rsplit('@', 1)[-1] for host in parts.netloc.split(','))).geturl()


def rounded(value: Optional[float]) -> Optional[float]:
    """Return ``value`` to 0.1 (None stays None)."""
    return None if value is None else round(value, 1)


def print_table(result: dict[str, Any], url: str) -> None:
    """Print the figures as a small table."""
    def ms(name: str) -> str:
        value = result.get(name)
        return '-' if value is None else '%.0f ms' % value

    rows = [
        ('guests / interval', '%d / %d ms (%d guest processes)' % (result['guests'], result['interval_ms'],
                                                                   result.get('guest_processes', 0))),
        ('detection hang -> controller notification', 'p50 %s, p99 %s, max %s (%s of %s hung detected)' % (
            ms('detection_p50_ms'), ms('detection_p99_ms'), ms('detection_max_ms'), result.get('detected'),
            result.get('samples'))),
        ('  of which at the compute agent', 'p50 %s, p99 %s' % (ms('agent_detection_p50_ms'),
                                                               ms('agent_detection_p99_ms'))),
        ('false alarms', str(result.get('false_alarms'))),
        ('compute agent CPU (steady state)', '%s %% of one core over %s s' % (result.get('agent_cpu_percent'),
                                                                             result.get('steady_s'))),
        ('controller CPU', '%s %%' % result.get('controller_cpu_percent')),
        ('guest processes CPU', '%s %% in all (max %s %% per process)' % (
            result.get('guest_processes_cpu_percent'), result.get('guest_processes_cpu_percent_max'))),
        ('RabbitMQ CPU', '%s %%' % result.get('broker_cpu_percent')),
        ('machine CPU, all cores', '%s %% in steady state, %s %% at most (other load disturbs the figures)' % (
            result.get('machine_cpu_percent_steady'), result.get('machine_cpu_percent_max'))),
        ('recovered after resume', '%s of %s' % (result.get('recovered'), result.get('samples'))),
        ('broker', safe_url(url)),
        ('duration', '%s s' % result.get('duration_s')),
    ]
    if 'agent_cpu_percent_metrics' in result:  # --metrics: the steady-state row above is the agent without
        rows.insert(5, ('  with its metrics scraped', '%s %% of one core (%+.1f points), a scrape every %g s: %s '
                        'scrapes of %s bytes, %s ms mean, %s ms max' % (
                            result['agent_cpu_percent_metrics'], result['agent_cpu_metrics_delta_points'],
                            result['scrape_period_s'], result.get('scrapes'), result.get('scrape_bytes'),
                            result.get('scrape_ms_mean'), result.get('scrape_ms_max'))))
    if 'agent_cpu_metrics_paired_delta_points' in result:  # --metrics-rounds 2..: restarted agents, in turns
        rows.insert(6, ('  on minus off, in turns', '%s points (median %+.1f; CPU per answer: %s µs)' % (
            ', '.join('%+.1f' % d for d in result['agent_cpu_metrics_paired_delta_points']),
            result['agent_cpu_metrics_paired_delta_median_points'],
            ', '.join('%s%s' % ('on ' if w['metrics'] else 'off ', w['cpu_us_per_answer'])
                      for w in result['metrics_windows']))))
    width = max(len(name) for name, _ in rows)
    print('\nha_guest benchmark')
    for name, value in rows:
        print('%-*s  %s' % (width, name, value))
