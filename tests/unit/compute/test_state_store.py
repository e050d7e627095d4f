"""The compute agent's state file."""

from __future__ import annotations

import json
import os
import time

import testtools

from ha_guest.compute.state_store import FORMAT_VERSION, StateStore
from tests.unit.compute.base import make_tempdir

RECORD = {"instance_uuid": "a", "state": "failed", "interval_ms": 100, "incident_id": "i1",
          "fault_kind": "missed", "reason": "no answer"}


class TestStateStore(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.folder = make_tempdir(self)
        self.path = os.path.join(self.folder, "sub", "state.json")

    def test_missing_file_is_empty(self) -> None:
        self.assertEqual({}, StateStore(self.path).load())

    def test_write_then_load(self) -> None:
        store = StateStore(self.path)
        store.write([RECORD, dict(RECORD, instance_uuid="b", state="healthy", incident_id=None, fault_kind=None)])
        loaded = StateStore(self.path).load()
        self.assertEqual({"a", "b"}, set(loaded))
        self.assertEqual(RECORD, loaded["a"])
        with open(self.path, encoding="utf-8") as handle:
            self.assertEqual(FORMAT_VERSION, json.load(handle)["version"])
        # Atomic: no temporary file is left behind.
        self.assertEqual(["state.json"], os.listdir(os.path.dirname(self.path)))

    def test_corrupt_or_foreign_file_counts_as_empty(self) -> None:
        os.makedirs(os.path.dirname(self.path))
        for body in ("{not json", "[]", json.dumps({"version": 99, "instances": []})):
            with open(self.path, "w", encoding="utf-8") as handle:
                handle.write(body)
            self.assertEqual({}, StateStore(self.path).load())

    def test_malformed_records_are_skipped(self) -> None:
        os.makedirs(os.path.dirname(self.path))
        bad = [{"instance_uuid": 1}, {"instance_uuid": "x", "state": "healthy", "interval_ms": "100"},
               {"instance_uuid": "y", "state": "healthy", "interval_ms": True}, "nope"]
        with open(self.path, "w", encoding="utf-8") as handle:
            json.dump({"version": FORMAT_VERSION, "instances": bad + [RECORD]}, handle)
        self.assertEqual(["a"], list(StateStore(self.path).load()))

    def test_empty_path_keeps_nothing(self) -> None:
        store = StateStore("")
        store.write([RECORD])
        self.assertEqual({}, store.load())

    def test_background_saves_coalesce_and_stop_writes_final(self) -> None:
        store = StateStore(self.path, min_interval_s=0.2)
        store.start()
        for index in range(50):
            store.save([dict(RECORD, interval_ms=100 + index)])
        deadline = time.monotonic() + 5
        while store.saves == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertLessEqual(store.saves, 2)
        store.stop(final=[dict(RECORD, interval_ms=999)])
        self.assertEqual(999, StateStore(self.path).load()["a"]["interval_ms"])

    def test_unwritable_path_is_logged_not_raised(self) -> None:
        blocker = os.path.join(self.folder, "file")
        open(blocker, "w").close()
        store = StateStore(os.path.join(blocker, "state.json"))
        store.start()
        store.stop(final=[RECORD])
        self.assertEqual(1, store.failures)
