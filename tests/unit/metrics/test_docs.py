"""doc/source/metrics.rst is true to the code: every metric documented with its labels, nothing else named."""

from __future__ import annotations

import os
import re

import testtools

from ha_guest.metrics import definitions

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "doc", "source", "metrics.rst")


class TestMetricsPage(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        with open(DOC, encoding="utf-8") as handle:
            self.text = handle.read()

    def test_every_metric_has_a_row_with_its_type_and_label_values(self) -> None:
        for metric in definitions.ALL:
            row = re.search(r"\* - ``%s``\n\s+- (\w+)\n\s+- ([^\n]*)" % re.escape(metric.name), self.text)
            self.assertIsNotNone(row, metric.name)
            assert row is not None
            self.assertEqual(metric.type, row.group(1), metric.name)
            for label, values in metric.labels.items():
                self.assertIn("``%s``: %s" % (label, ", ".join(values)), row.group(2), metric.name)

    def test_every_name_in_the_page_is_exported(self) -> None:
        named = set(re.findall(r"\bha_guest_(?:compute|controller)_[a-z_]+", self.text))
        self.assertEqual(set(), named - definitions.series_names() - {m.name for m in definitions.ALL})
