"""Helpers of the metrics tests: a scrape's text parsed into {(sample name, labels): value}."""

from __future__ import annotations

from typing import Dict, FrozenSet, Iterable, Tuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition text by (name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(collectors: Iterable[object]) -> Tuple[str, Samples]:
    """Register ``collectors`` on a fresh registry; return its exposition text and its samples."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)  # type: ignore[arg-type]
    text = generate_latest(registry).decode("utf-8")
    return text, parse(text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; KeyError naming what is there if absent."""
    key = (name, frozenset(labels.items()))
    if key not in samples:
        raise KeyError("%s%s not in %s" % (name, labels, sorted(n for n, _ in samples)))
    return samples[key]
