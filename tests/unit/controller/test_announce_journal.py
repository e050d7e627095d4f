"""The announce journal: which sinks took which incident's raise, kept across a restart and bounded."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import fixtures
import testtools

from ha_guest.controller import announce_journal
from ha_guest.controller.announce_journal import AnnounceJournal
from ha_guest.controller.dispatch import SinkDispatcher
from ha_guest.controller.handler import FaultHandler
from ha_guest.controller.registry import FaultRegistry
from tests.unit.controller.test_dispatch import TIMEOUT, FailingSink, RecordingSink
from tests.unit.controller.test_registry import fault
from tests.unit.controller.test_watchers import Clock

DAY = 86400.0


class TestAnnounceJournal(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'd', 'announced.jsonl')
        self.clock = Clock()

    def journal(self, retention_s: float = DAY, max_incidents: int = 100) -> AnnounceJournal:
        journal = AnnounceJournal(self.path, retention_s, max_incidents, self.clock)
        journal.open()
        self.addCleanup(journal.close)
        return journal

    def test_what_one_run_noted_the_next_run_knows(self) -> None:
        first = self.journal()
        self.assertEqual(frozenset(), first.told(('i-1', 'x')))
        first.record(('i-1', 'x'), 'log')
        first.record(('i-1', 'x'), 'notifications')
        first.record(('i-1', 'x'), 'log')  # once is enough
        first.record(('i-2', 'y'), 'log')
        # No close(): a kill -9 leaves what was flushed.
        second = self.journal()
        self.assertEqual(frozenset({'log', 'notifications'}), second.told(('i-1', 'x')))
        self.assertEqual(frozenset({'log'}), second.told(('i-2', 'y')))
        self.assertEqual(frozenset(), second.told(('i-2', 'x')))
        with open(self.path, encoding='utf-8') as handle:
            self.assertEqual(3, len(handle.read().splitlines()))  # rewritten at open: one line per sink told

    def test_torn_and_foreign_lines_are_skipped(self) -> None:
        os.makedirs(os.path.dirname(self.path))
        good = json.dumps(['i-1', 'x', 'log', 999.0])
        with open(self.path, 'w', encoding='utf-8') as handle:
            handle.write('\n'.join([good, 'not json', json.dumps({'a': 1}), json.dumps(['i', 'x', 'log', True]),
                                    json.dumps(['i-3', 'z', 'log', 1.0, 'extra']), '["i-2","y","log",99' ]))
        journal = self.journal()
        self.assertEqual(1, len(journal))
        self.assertEqual(frozenset({'log'}), journal.told(('i-1', 'x')))
        self.assertIn('5 unreadable line(s) skipped', self.log.output)

    def test_a_line_past_the_size_limit_is_not_parsed(self) -> None:
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, 'w', encoding='utf-8') as handle:
            handle.write(json.dumps(['i' * announce_journal.MAX_LINE_BYTES, 'x', 'log', 999.0]) + '\n')
        self.assertEqual(0, len(self.journal()))

    def test_old_incidents_are_forgotten(self) -> None:
        journal = self.journal(retention_s=100.0)
        journal.record(('i-1', 'x'), 'log')
        self.clock.now += 60
        journal.record(('i-2', 'y'), 'log')
        self.clock.now += 60  # i-1 is 120 s old, i-2 60 s
        journal.record(('i-3', 'z'), 'log')
        self.assertEqual(frozenset(), journal.told(('i-1', 'x')))
        self.assertEqual(frozenset({'log'}), journal.told(('i-2', 'y')))
        self.clock.now += 50
        again = self.journal(retention_s=100.0)  # read back: i-2 is 110 s old now
        self.assertEqual(frozenset(), again.told(('i-2', 'y')))
        self.assertEqual(frozenset({'log'}), again.told(('i-3', 'z')))

    def test_at_most_max_incidents_and_the_file_stays_bounded(self) -> None:
        journal = self.journal(max_incidents=10)
        for i in range(100):
            journal.record(('i-%d' % i, 'x'), 'log')
        self.assertEqual(10, len(journal))
        self.assertEqual(frozenset({'log'}), journal.told(('i-99', 'x')))
        self.assertEqual(frozenset(), journal.told(('i-89', 'x')))
        with open(self.path, encoding='utf-8') as handle:
            self.assertLessEqual(len(handle.read().splitlines()), 2 * 10 + 1000)

    def test_an_unwritable_journal_is_an_error_at_open(self) -> None:
        os.makedirs(self.path)  # a directory where the file should be
        journal = AnnounceJournal(self.path, DAY, 10, self.clock)
        self.assertRaises(OSError, journal.open)
        journal.record(('i-1', 'x'), 'log')  # memory only: the controller runs on
        self.assertEqual(frozenset({'log'}), journal.told(('i-1', 'x')))

    def test_bad_bounds_refused(self) -> None:
        self.assertRaises(ValueError, AnnounceJournal, self.path, DAY, 0)
        self.assertRaises(ValueError, AnnounceJournal, self.path, 0.0, 10)


class TestRestartedController(testtools.TestCase):
    """A fault report sent again after a restart: the sinks that took it are not told twice."""

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'announced.jsonl')

    def controller(self, sinks: dict[str, Any]) -> FaultHandler:
        journal = AnnounceJournal(self.path, DAY, 100)
        journal.open()
        self.addCleanup(journal.close)
        dispatcher = SinkDispatcher(sinks, queue_size=10, journal=journal)
        dispatcher.start()
        self.addCleanup(dispatcher.stop, TIMEOUT)
        return FaultHandler(FaultRegistry(), dispatcher, None)

    def test_told_sinks_skipped_untold_ones_told(self) -> None:
        first = {'log': RecordingSink(), 'notifications': FailingSink()}
        handler = self.controller(first)
        self.assertEqual({'duplicate': False}, handler.report_fault(fault(incident='x')))
        self.assertEqual(('raised', 'x'), first['log'].events.get(timeout=TIMEOUT))
        handler.sinks.stop(TIMEOUT)  # the run ends (its sinks drained); the journal file stays
        # The agent got no answer and sends the fault again, to the next run of the controller.
        second = {'log': RecordingSink(), 'notifications': RecordingSink()}
        handler = self.controller(second)
        self.assertEqual({'duplicate': False}, handler.report_fault(fault(incident='x')))
        # The sink that failed never took it: it is told now. The log sink took it: not again.
        self.assertEqual(('raised', 'x'), second['notifications'].events.get(timeout=TIMEOUT))
        handler.sinks.stop(TIMEOUT)
        self.assertTrue(second['log'].events.empty())
        self.assertEqual(1, len(handler.registry))  # known and active all the same
        # A new incident of the same instance is told to every sink.
        third = {'log': RecordingSink(), 'notifications': RecordingSink()}
        handler = self.controller(third)
        handler.report_fault(fault(incident='y'))
        handler.sinks.stop(TIMEOUT)
        for sink in third.values():
            self.assertEqual(('raised', 'y'), sink.events.get(timeout=TIMEOUT))
