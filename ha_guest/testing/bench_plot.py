"""The benchmark's ``--plot PATH``: its latency distributions as one PNG (matplotlib: bench env only).

Left: detection latency of the hung guests, end to end (hang to the
notification's arrival) and at the compute agent (hang to detected_at).
Right, with ``--metrics``: the agent's answer latency histogram from its
last scrape (every answer of the run, challenge to answer).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ha_guest.testing.bench_procs import BenchError

ANSWER_FAMILY = 'ha_guest_compute_answer_latency_seconds'


def answer_buckets(scrape: str) -> list[tuple[float, int]]:
    """[(upper bound in seconds, answers in that bucket alone)] from an exposition text's histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    cumulative = []
    for family in text_string_to_metric_families(scrape):
        if family.name == ANSWER_FAMILY:
            cumulative = sorted((float(s.labels['le']), int(s.value)) for s in family.samples
                                if s.name.endswith('_bucket'))
    out, previous = [], 0
    for bound, count in cumulative:
        out.append((bound, count - previous))
        previous = count
    return out


def plot(path: str, result: dict[str, Any], detection_ms: Sequence[float], agent_ms: Sequence[float],
         scrape: Optional[str]) -> None:
    """Write the PNG to ``path``."""
    try:
        import matplotlib
    except ImportError:
        raise BenchError('--plot needs matplotlib (tox -e bench installs it)') from None
    matplotlib.use('Agg')
    from matplotlib import pyplot

    buckets = answer_buckets(scrape) if scrape else []
    figure, axes = pyplot.subplots(1, 2 if buckets else 1, figsize=(12 if buckets else 7, 4.5), squeeze=False)
    title = '%d guests, %d ms interval' % (result['guests'], result['interval_ms'])
    left = axes[0][0]
    if detection_ms:
        top = max(max(detection_ms), max(agent_ms, default=0.0))
        bins = [top * i / 30.0 for i in range(31)]
        left.hist(agent_ms, bins=bins, alpha=0.6, label='at the compute agent (detected_at)')
        left.hist(detection_ms, bins=bins, alpha=0.6, label='notification received')
        left.axvline(result['interval_ms'] * 2, color='grey', linestyle=':', label='two intervals')
        left.legend(fontsize=8)
    left.set_xlabel('detection latency after the hang (ms)')
    left.set_ylabel('hung guests')
    left.set_title('Detection: %s (%d of %d detected)' % (title, result.get('detected', 0),
                                                          result.get('samples', 0)), fontsize=10)
    if buckets:
        right = axes[0][1]
        shown = [(bound, count) for bound, count in buckets if bound != float('inf')]
        labels = ['<= %g' % (bound * 1000.0) for bound, _ in shown] + ['more']
        counts = [count for _, count in shown] + [buckets[-1][1]]
        right.bar(range(len(counts)), counts)
        right.set_xticks(range(len(counts)))
        right.set_xticklabels(labels, rotation=45, fontsize=7)
        right.set_yscale('log')
        right.set_xlabel('answer latency (ms), challenge to answer')
        right.set_ylabel('answers (log scale)')
        right.set_title('Answers: %s, from the agent\'s metrics' % title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
