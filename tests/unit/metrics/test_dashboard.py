"""The Grafana dashboard: every query parses and selects only metrics the services really export."""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterator, List, Tuple

import testtools

from ha_guest.metrics import definitions
from tests.unit.metrics.promql import PromQLError, metric_names

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "..", "etc", "grafana", "ha-guest.json")
LABEL_VALUES = re.compile(r"^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*), *([a-zA-Z_][a-zA-Z0-9_]*)\)$")


def load() -> Any:
    with open(DASHBOARD, encoding="utf-8") as handle:
        return json.load(handle)


def panels(dashboard: Any) -> Iterator[Any]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold theirs


def expressions(dashboard: Any) -> List[Tuple[str, str]]:
    """(panel title, expr) of every query."""
    return [(panel["title"], target["expr"]) for panel in panels(dashboard) for target in panel.get("targets", [])]


def labels_of(series: str) -> set:
    """The labels a sample name carries: its metric's, Prometheus' target labels, le on buckets."""
    by_name = definitions.by_name()
    metric = by_name.get(series) or by_name[re.sub(r"_(bucket|sum|count)$", "", series)]
    return set(metric.labels) | {"instance", "job"} | ({"le"} if series.endswith("_bucket") else set())


class TestPromQLParser(testtools.TestCase):

    def test_names_from_a_typical_query(self) -> None:
        self.assertEqual({"a_bucket", "b"}, metric_names(
            'histogram_quantile(0.99, sum by (le) (rate(a_bucket{instance=~"$x", le!="1"}[$__rate_interval]))) '
            '/ on (instance) group_left max without (job) (b offset 5m) > bool 0'))

    def test_errors(self) -> None:
        for bad in ('sum(rate(a[5m])', 'rat(a[5m])', 'a{b="c"', 'a[5]', 'sum by le (a)', 'a +', 'a{b=c}', '1 $ 2'):
            self.assertRaises(PromQLError, metric_names, bad)


class TestDashboard(testtools.TestCase):

    def test_every_query_parses_and_uses_exported_metrics(self) -> None:
        exported = definitions.series_names()
        queries = expressions(load())
        self.assertGreater(len(queries), 20)
        for title, expr in queries:
            names = metric_names(expr)
            self.assertTrue(names, "%s: %s selects no metric" % (title, expr))
            self.assertEqual(set(), names - exported, "%s: %s" % (title, expr))

    def test_every_metric_has_a_panel(self) -> None:
        used = set().union(*(metric_names(expr) for _, expr in expressions(load())))
        for metric in definitions.ALL:
            self.assertTrue(used & set(metric.series_names), "no panel shows %s" % metric.name)

    def test_labels_grouped_by_are_the_metrics_own(self) -> None:
        # "by (kind)" on a metric without that label would draw one nameless line.
        for title, expr in expressions(load()):
            known = set().union(*(labels_of(name) for name in metric_names(expr)))
            for grouped in re.findall(r"\b(?:by|without) \(([^)]*)\)", expr):
                for label in grouped.replace(" ", "").split(","):
                    self.assertIn(label, known, "%s: %s" % (title, expr))

    def test_template_variables_use_exported_metrics(self) -> None:
        exported = definitions.series_names()
        for variable in load()["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = LABEL_VALUES.match(variable["query"]["query"])
            self.assertIsNotNone(match, variable["query"])
            assert match is not None
            self.assertIn(match.group(1), exported)

    def test_panels_do_not_overlap_and_have_unique_ids(self) -> None:
        cells = set()
        ids = [panel["id"] for panel in panels(load())]
        self.assertEqual(len(ids), len(set(ids)))
        for panel in panels(load()):
            pos = panel["gridPos"]
            self.assertLessEqual(pos["x"] + pos["w"], 24, panel["title"])
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    self.assertNotIn((x, y), cells, panel["title"])
                    cells.add((x, y))
