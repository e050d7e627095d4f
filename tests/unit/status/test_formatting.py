"""Rows and cells of the status listings."""

from __future__ import annotations

import io
import json

import testtools
import yaml
from cliff.formatters import commaseparated, json_format, table, value, yaml_format

from ha_guest.status import formatting

AT = 1796515200.0  # 2026-12-06T00:00:00Z


class Args:
    """What cliff's formatters read from the parsed arguments."""

    max_width = 0
    fit_width = False
    print_empty = False
    noindent = False
    quote_mode = 'nonnumeric'


def emit(formatter: object, columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    out = io.StringIO()
    formatter.emit_list(columns, rows, out, Args())  # type: ignore[attr-defined]
    return out.getvalue()


class TestCells(testtools.TestCase):

    def test_iso_and_age(self) -> None:
        self.assertEqual('2026-12-06T00:00:00Z', formatting.iso(AT))
        for bad in (None, 0, -1.0, float('nan'), True, 'x'):
            self.assertIsNone(formatting.iso(bad))
        self.assertEqual(2.5, formatting.age(AT, AT + 2.46))
        self.assertEqual(0.0, formatting.age(AT, AT - 5))  # a clock behind: never negative
        self.assertIsNone(formatting.age(None, AT))

    def test_counts_in_state_order_then_by_name(self) -> None:
        counts = formatting.CountsColumn({'zeta': 1, 'failed': 2, 'healthy': 3})
        self.assertEqual('healthy=3, failed=2, zeta=1', counts.human_readable())
        self.assertEqual({'zeta': 1, 'failed': 2, 'healthy': 3}, counts.machine_readable())
        self.assertEqual('-', formatting.CountsColumn({}).human_readable())

    def test_faults_open_first_then_oldest(self) -> None:
        faults = [{'state': 'cleared', 'detected_at': 1.0}, {'state': 'active', 'detected_at': 5.0},
                  {'state': 'active', 'detected_at': 2.0}]
        self.assertEqual([2.0, 5.0, 1.0], [f['detected_at'] for f in formatting.sort_faults(faults)])

    def test_host_fault_reads_like_a_fault(self) -> None:
        alarm = {'host': 'cmp1', 'kind': 'agent_silent', 'state': 'active', 'detected_at': AT + 60,
                 'last_report_at': AT, 'incident_id': 'i1'}
        row = dict(zip(formatting.FAULT_COLUMNS, formatting.fault_row(formatting.host_fault_as_fault(alarm)),
                       strict=True))
        self.assertEqual(('', 'cmp1', 'agent_silent', 'active', 'i1'),
                         (row['Instance'], row['Host'], row['Kind'], row['State'], row['Incident']))
        self.assertEqual('no state report since 2026-12-06T00:00:00Z', row['Reason'])


class TestEveryFormat(testtools.TestCase):
    """One host row through each of cliff's formatters: structure for json/yaml, text for the others."""

    def setUp(self) -> None:
        super().setUp()
        agent = {'host': 'cmp1', 'status': 'alive', 'last_report_at': AT, 'version': '1.0.0', 'rpc_api': '1.2',
                 'instances': {'healthy': 2, 'failed': 1}, 'unregistered': 0, 'host_fault': None}
        self.rows = [formatting.host_row(agent, AT + 3.0)]

    def test_json_and_yaml_keep_the_counts(self) -> None:
        for formatter, load in ((json_format.JSONFormatter(), json.loads),
                                (yaml_format.YAMLFormatter(), yaml.safe_load)):
            [row] = load(emit(formatter, formatting.HOST_COLUMNS, self.rows))
            self.assertEqual({'healthy': 2, 'failed': 1}, row['Instances'])
            self.assertEqual((3.0, '2026-12-06T00:00:00Z', 'alive'),
                             (row['Report Age (s)'], row['Last Report At'], row['Status']))

    def test_table_csv_value_are_text(self) -> None:
        self.assertIn('healthy=2, failed=1', emit(table.TableFormatter(), formatting.HOST_COLUMNS, self.rows))
        csv_text = emit(commaseparated.CSVLister(), formatting.HOST_COLUMNS, self.rows)
        self.assertTrue(csv_text.startswith('"Host","Status"'), csv_text)
        self.assertIn('cmp1 alive 2026-12-06T00:00:00Z 3.0', emit(value.ValueFormatter(), formatting.HOST_COLUMNS,
                                                                 self.rows))

    def test_older_agent_shows_its_api_as_older(self) -> None:
        row = dict(zip(formatting.HOST_COLUMNS, formatting.host_row({'host': 'old', 'status': 'alive'}, AT),
                       strict=True))
        self.assertEqual(('<1.2', None), (row['RPC API'], row['Last Report At']))
