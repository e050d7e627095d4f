"""The compute agent's state file: format versions, generations, corrupt files, urgent and lazy saves."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import List

import testtools

from ha_guest.compute.state_store import (
    FORMAT_VERSION,
    FROM_FILE,
    FROM_PREV,
    NO_FILE,
    UNREADABLE,
    StateStore,
    normalised,
)
from tests.unit.compute.base import make_tempdir

RECORD = {"instance_uuid": "a", "state": "failed", "interval_ms": 100, "incident_id": "i1",
          "fault_kind": "missed", "reason": "no answer", "detected_at": 1767225600.5, "announced": True,
          "since": 1767225500.0}
V1_RECORD = {"instance_uuid": "a", "state": "failed", "interval_ms": 100, "incident_id": "i1",
             "fault_kind": "missed", "reason": "no answer"}


class TestStateStore(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.folder = make_tempdir(self)
        self.path = os.path.join(self.folder, "sub", "state.json")

    def put(self, path: str, body: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(body)

    def test_missing_file_is_a_first_start(self) -> None:
        loaded = StateStore(self.path).load()
        self.assertEqual(({}, NO_FILE), (loaded.records, loaded.source))

    def test_write_then_load_version_2(self) -> None:
        store = StateStore(self.path)
        store.write([RECORD, dict(RECORD, instance_uuid="b", state="healthy", incident_id=None, fault_kind=None,
                                  detected_at=None, announced=False)])
        loaded = StateStore(self.path).load()
        self.assertEqual(({"a", "b"}, FROM_FILE), (set(loaded.records), loaded.source))
        self.assertEqual(RECORD, loaded.records["a"])
        with open(self.path, encoding="utf-8") as handle:
            self.assertEqual(2, json.load(handle)["version"])
        self.assertEqual(2, FORMAT_VERSION)
        # Atomic: no temporary file is left behind; the first write has no previous generation.
        self.assertEqual(["state.json"], os.listdir(os.path.dirname(self.path)))
        self.assertGreater(store.last_write_s, 0.0)

    def test_version_1_is_read_without_detection_time_and_not_announced(self) -> None:
        self.put(self.path, json.dumps({"version": 1, "instances": [V1_RECORD]}))
        loaded = StateStore(self.path).load()
        self.assertEqual(FROM_FILE, loaded.source)
        self.assertEqual(dict(V1_RECORD, detected_at=None, announced=False, since=None), loaded.records["a"])

    def test_each_write_keeps_the_previous_generation(self) -> None:
        store = StateStore(self.path)
        store.write([dict(RECORD, interval_ms=100)])
        store.write([dict(RECORD, interval_ms=200)])
        store.write([dict(RECORD, interval_ms=300)])
        with open(self.path + ".prev", encoding="utf-8") as handle:
            self.assertEqual(200, json.load(handle)["instances"][0]["interval_ms"])
        self.assertEqual(300, StateStore(self.path).load().records["a"]["interval_ms"])
        self.assertEqual(["state.json", "state.json.prev"], sorted(os.listdir(os.path.dirname(self.path))))

    def test_corrupt_file_falls_back_to_the_previous_generation(self) -> None:
        store = StateStore(self.path)
        store.write([dict(RECORD, interval_ms=100)])
        store.write([dict(RECORD, interval_ms=200)])
        for body in ("{not json", "", "[]", json.dumps({"version": 99, "instances": []}), "\x00" * 64):
            self.put(self.path, body)
            loaded = StateStore(self.path).load()
            self.assertEqual((FROM_PREV, 100), (loaded.source, loaded.records["a"]["interval_ms"]), body)

    def test_a_corrupt_file_never_becomes_the_previous_generation(self) -> None:
        StateStore(self.path).write([dict(RECORD, interval_ms=100)])
        StateStore(self.path).write([dict(RECORD, interval_ms=200)])  # .prev: 100
        self.put(self.path, "{garbage")
        store = StateStore(self.path)
        self.assertEqual(FROM_PREV, store.load().source)
        store.write([dict(RECORD, interval_ms=300)])
        with open(self.path + ".prev", encoding="utf-8") as handle:
            self.assertEqual(100, json.load(handle)["instances"][0]["interval_ms"])  # the good one, kept
        self.assertEqual(300, StateStore(self.path).load().records["a"]["interval_ms"])

    def test_neither_generation_readable_says_so(self) -> None:
        self.put(self.path, "{garbage")
        self.assertEqual(UNREADABLE, StateStore(self.path).load().source)
        self.put(self.path + ".prev", "also garbage")
        loaded = StateStore(self.path).load()
        self.assertEqual(({}, UNREADABLE), (loaded.records, loaded.source))

    def test_missing_file_with_a_previous_generation_uses_it(self) -> None:
        self.put(self.path + ".prev", json.dumps({"version": 2, "instances": [RECORD]}))
        loaded = StateStore(self.path).load()
        self.assertEqual((FROM_PREV, ["a"]), (loaded.source, list(loaded.records)))

    def test_malformed_records_are_skipped(self) -> None:
        bad = [{"instance_uuid": 1}, {"instance_uuid": "x", "state": "healthy", "interval_ms": "100"},
               {"instance_uuid": "y", "state": "healthy", "interval_ms": True}, "nope",
               dict(RECORD, instance_uuid="z", detected_at="yesterday"), dict(RECORD, instance_uuid="w", announced=1)]
        self.put(self.path, json.dumps({"version": FORMAT_VERSION, "instances": bad + [RECORD]}))
        self.assertEqual(["a"], list(StateStore(self.path).load().records))

    def test_empty_path_keeps_nothing_and_releases_at_once(self) -> None:
        store = StateStore("")
        store.write([RECORD])
        self.assertEqual({}, store.load().records)
        released: List[int] = []
        store.save([RECORD], release=lambda: released.append(1))
        self.assertEqual([1], released)

    def test_lazy_saves_coalesce_and_stop_writes_final(self) -> None:
        store = StateStore(self.path, min_interval_s=0.2)
        store.start()
        for index in range(50):
            store.save([dict(RECORD, interval_ms=100 + index)])
        deadline = time.monotonic() + 5
        while store.saves == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertLessEqual(store.saves, 2)
        store.stop(final=[dict(RECORD, interval_ms=999)])
        self.assertEqual(999, StateStore(self.path).load().records["a"]["interval_ms"])

    def test_urgent_save_is_written_before_its_release_and_skips_the_interval(self) -> None:
        store = StateStore(self.path, min_interval_s=30.0)
        store.start()
        self.addCleanup(store.stop)
        store.save([dict(RECORD, interval_ms=100)])  # a lazy write: the next would wait 30 s
        seen: List[int] = []
        done = threading.Event()

        def release() -> None:
            seen.append(StateStore(self.path).load().records["a"]["interval_ms"])
            done.set()

        time.sleep(0.05)
        started = time.monotonic()
        store.save([dict(RECORD, interval_ms=200)], release=release)
        self.assertTrue(done.wait(5.0))
        self.assertLess(time.monotonic() - started, 1.0)  # not 30 s
        self.assertEqual([200], seen)  # the file held it when the report was released

    def test_releases_keep_their_order_and_a_burst_shares_writes(self) -> None:
        store = StateStore(self.path, min_interval_s=0.2)
        order: List[int] = []
        for index in range(1000):
            store.save([dict(RECORD, interval_ms=100 + index)], release=lambda index=index: order.append(index))
        store.start()  # everything queued before the writer ran: one write
        deadline = time.monotonic() + 5
        while len(order) < 1000 and time.monotonic() < deadline:
            time.sleep(0.01)
        store.stop()
        self.assertEqual(list(range(1000)), order)
        self.assertEqual(1, store.saves)
        self.assertEqual(1099, StateStore(self.path).load().records["a"]["interval_ms"])

    def test_failed_write_still_releases(self) -> None:
        blocker = os.path.join(self.folder, "file")
        open(blocker, "w").close()
        store = StateStore(os.path.join(blocker, "state.json"))
        released: List[int] = []
        store.start()
        store.save([RECORD], release=lambda: released.append(1))
        store.stop(final=[RECORD])
        self.assertEqual([1], released)
        self.assertGreaterEqual(store.failures, 1)

    def test_save_after_stop_writes_and_releases_at_once(self) -> None:
        store = StateStore(self.path)
        store.start()
        store.stop()
        released: List[int] = []
        store.save([RECORD], release=lambda: released.append(1))
        self.assertEqual(([1], ["a"]), (released, list(StateStore(self.path).load().records)))

    def test_normalised_fills_version_2_fields(self) -> None:
        self.assertEqual(dict(V1_RECORD, detected_at=None, announced=False, since=None), normalised(V1_RECORD))
