"""The alert rules: every expression selects metrics the services export, with labels they carry; all documented."""

from __future__ import annotations

import os
import re
from typing import Any, List

import testtools
import yaml

from ha_guest.metrics import definitions
from tests.unit.metrics.promql import metric_names
from tests.unit.metrics.test_dashboard import labels_of

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
RULES = os.path.join(ROOT, "etc", "prometheus", "ha-guest-alerts.yaml")
DOC = os.path.join(ROOT, "doc", "source", "metrics.rst")
#: Prometheus' own series about a scrape target, not ours.
PROMETHEUS_SERIES = {"up"}
SEVERITIES = {"critical", "warning", "info"}


def rules() -> List[Any]:
    with open(RULES, encoding="utf-8") as handle:
        groups = yaml.safe_load(handle)["groups"]
    return [rule for group in groups for rule in group["rules"]]


class TestAlertRules(testtools.TestCase):

    def test_expressions_use_exported_metrics(self) -> None:
        exported = definitions.series_names()
        for rule in rules():
            names = metric_names(rule["expr"])
            self.assertTrue(names, rule["alert"])
            self.assertEqual(set(), names - exported - PROMETHEUS_SERIES, rule["alert"])

    def test_labels_used_are_the_metrics_own(self) -> None:
        # An annotation naming a label the alert does not carry renders empty; a matcher on one never matches.
        for rule in rules():
            names = metric_names(rule["expr"]) - PROMETHEUS_SERIES
            known = set().union(*(labels_of(name) for name in names)) if names else {"instance", "job"}
            used = set(re.findall(r"\$labels\.(\w+)", str(rule["annotations"])))
            used |= set(re.findall(r"(\w+)=~?\"", rule["expr"]))
            for grouped in re.findall(r"\b(?:by|without) \(([^)]*)\)", rule["expr"]):
                used |= {label.strip() for label in grouped.split(",")} - {"le"}
            self.assertEqual(set(), used - known, rule["alert"])

    def test_matcher_values_exist(self) -> None:
        # reason="given_up" and the like: values the metrics really take.
        for rule in rules():
            for name in metric_names(rule["expr"]) - PROMETHEUS_SERIES:
                metric = definitions.by_name().get(name)
                if metric is None:
                    continue
                for label, value in re.findall(r"(\w+)=\"([^\"]*)\"", rule["expr"]):
                    if label in metric.labels:
                        self.assertIn(value, metric.labels[label], rule["alert"])
                for label, pattern in re.findall(r"(\w+)=~\"([^\"]*)\"", rule["expr"]):
                    if label in metric.labels:
                        for value in pattern.split("|"):
                            self.assertIn(value, metric.labels[label], rule["alert"])

    def test_shape_and_documentation(self) -> None:
        with open(DOC, encoding="utf-8") as handle:
            doc = handle.read()
        alerts = [rule["alert"] for rule in rules()]
        self.assertEqual(len(alerts), len(set(alerts)))
        for rule in rules():
            self.assertIn(rule["labels"]["severity"], SEVERITIES, rule["alert"])
            self.assertEqual({"summary", "description"}, set(rule["annotations"]), rule["alert"])
            self.assertIn("``%s``" % rule["alert"], doc, "%s is not in metrics.rst" % rule["alert"])
