"""Health aggregation with a fake clock, and check commands run for real."""

from __future__ import annotations

import asyncio
import os
import time

from ha_guest.guest import health
from ha_guest.guest.config import CheckConfig
from ha_guest.protocol.limits import MAX_REASON_CHARS
from tests.unit.guest.base import AsyncTestCase, FakeClock, wait_until

HEALTHY = ("healthy", "")


class TestHealthModel(AsyncTestCase):
    """Aggregation of checks and reports."""

    def setUp(self) -> None:
        self.clock = FakeClock()
        self.model = health.HealthModel(self.clock)

    def test_empty_is_healthy(self) -> None:
        self.assertEqual(HEALTHY, self.model.overall())

    def test_check_healthy_until_first_result(self) -> None:
        self.model.add_check("sshd")
        self.assertEqual(HEALTHY, self.model.overall())
        self.model.set_check("sshd", False, "check sshd exited 1")
        self.assertEqual(("unhealthy", "check sshd exited 1"), self.model.overall())
        self.model.set_check("sshd", True)
        self.assertEqual(HEALTHY, self.model.overall())

    def test_unhealthy_report_and_clear(self) -> None:
        self.model.report("db", "unhealthy", "replica lag")
        self.assertEqual(("unhealthy", "db: replica lag"), self.model.overall())
        self.assertTrue(self.model.clear("db"))
        self.assertFalse(self.model.clear("db"))
        self.assertEqual(HEALTHY, self.model.overall())

    def test_unhealthy_report_without_reason(self) -> None:
        self.model.report("db", "unhealthy")
        self.assertEqual(("unhealthy", "db: unhealthy"), self.model.overall())

    def test_report_expiry_turns_unhealthy(self) -> None:
        self.model.report("app", "healthy", expires_in_s=5)
        self.assertEqual(HEALTHY, self.model.overall())
        self.clock.advance(4.9)
        self.assertEqual(HEALTHY, self.model.overall())
        self.clock.advance(0.2)
        self.assertEqual(("unhealthy", "report from app expired"), self.model.overall())
        # Renewal makes it healthy again.
        self.model.report("app", "healthy", expires_in_s=5)
        self.assertEqual(HEALTHY, self.model.overall())

    def test_reasons_joined_and_truncated(self) -> None:
        self.model.add_check("a")
        self.model.set_check("a", False, "check a exited 2")
        self.model.report("b", "unhealthy", "x" * 200)
        self.model.report("c", "unhealthy", "y" * 200)
        state, reason = self.model.overall()
        self.assertEqual("unhealthy", state)
        self.assertEqual(MAX_REASON_CHARS, len(reason))
        self.assertTrue(reason.startswith("check a exited 2; b: xxx"))
        self.assertIn("; c: y", reason)

    def test_long_check_reason_truncated(self) -> None:
        self.model.set_check("a", False, "z" * 1000)
        self.assertEqual(MAX_REASON_CHARS, len(self.model.overall()[1]))

    def test_snapshots(self) -> None:
        self.model.add_check("sshd")
        self.model.report("app", "healthy", expires_in_s=10)
        self.clock.advance(2.5)
        self.assertEqual([{"name": "sshd", "health": "healthy", "reason": ""}], self.model.checks_snapshot())
        self.assertEqual(
            [{"source": "app", "health": "healthy", "reason": "", "expires_in_s": 7.5}],
            self.model.reports_snapshot(),
        )

    def test_report_limit(self) -> None:
        for i in range(health.MAX_REPORTS):
            self.model.report("s%d" % i, "healthy")
        self.assertRaises(health.ReportLimitError, self.model.report, "one-more", "healthy")
        # Replacing an existing source is always allowed.
        self.model.report("s0", "unhealthy", "down")


def _gone(pid: int) -> bool:
    """True if the process no longer exists or is only a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class TestRunCheck(AsyncTestCase):
    """Check commands run by /bin/sh in their own process group."""

    def test_true_is_healthy(self) -> None:
        result = self.run_async(health.run_check(CheckConfig("t", "true", 5, 3)))
        self.assertEqual(health.CheckResult(True, ""), result)

    def test_false_is_unhealthy(self) -> None:
        result = self.run_async(health.run_check(CheckConfig("f", "false", 5, 3)))
        self.assertEqual(health.CheckResult(False, "check f exited 1"), result)

    def test_first_output_line_in_reason(self) -> None:
        cmd = "echo; echo '  disk full  '; echo second; echo err >&2; exit 3"
        result = self.run_async(health.run_check(CheckConfig("disk", cmd, 5, 3)))
        self.assertEqual(health.CheckResult(False, "check disk exited 3: disk full"), result)

    def test_huge_output_is_bounded(self) -> None:
        result = self.run_async(health.run_check(CheckConfig("big", "yes | head -c 1000000; exit 1", 5, 5)))
        self.assertFalse(result.healthy)
        self.assertTrue(result.reason.startswith("check big exited 1: y"))

    def test_timeout_kills_process_group(self) -> None:
        tmp = self.make_tempdir()
        pidfile = os.path.join(tmp, "pid")
        # The background sleep is a grandchild; only a group kill reaches it.
        cmd = "sleep 30 & echo $! > %s; sleep 5" % pidfile
        start = time.monotonic()
        result = self.run_async(health.run_check(CheckConfig("slow", cmd, 5, 0.2)))
        self.assertLess(time.monotonic() - start, 3.0)
        self.assertEqual(health.CheckResult(False, "check slow timed out after 0.2s"), result)
        with open(pidfile) as handle:
            pid = int(handle.read())
        deadline = time.monotonic() + 3
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(_gone(pid), "background child %d survived the timeout" % pid)

    def test_plain_sleep_times_out(self) -> None:
        start = time.monotonic()
        result = self.run_async(health.run_check(CheckConfig("s", "sleep 5", 5, 0.2)))
        self.assertLess(time.monotonic() - start, 3.0)
        self.assertEqual("check s timed out after 0.2s", result.reason)

    def test_leftover_child_holding_output(self) -> None:
        # The shell exits at once but its child keeps stdout open.
        start = time.monotonic()
        result = self.run_async(health.run_check(CheckConfig("bg", "sleep 30 & exit 0", 5, 3)))
        self.assertTrue(result.healthy)
        self.assertLess(time.monotonic() - start, 2.0)


class TestCheckRunner(AsyncTestCase):
    """Checks run periodically and feed the model."""

    def test_runs_and_updates_model(self) -> None:
        model = health.HealthModel()
        tmp = self.make_tempdir()
        flag = os.path.join(tmp, "bad")
        runner = runner_for(model, [CheckConfig("flag", "test ! -e %s || { echo broken; exit 1; }" % flag,
                                                0.05, 2)])

        async def scenario() -> None:
            runner.start()
            try:
                await wait_until(lambda: runner.runs >= 1)
                self.assertEqual(HEALTHY, model.overall())
                open(flag, "w").close()
                await wait_until(lambda: model.overall()[0] == "unhealthy")
                self.assertEqual("check flag exited 1: broken", model.overall()[1])
            finally:
                await runner.stop()

        self.run_async(scenario())

    def test_stop_kills_running_check(self) -> None:
        model = health.HealthModel()
        tmp = self.make_tempdir()
        pidfile = os.path.join(tmp, "pid")
        runner = runner_for(model, [CheckConfig("slow", "echo $$ > %s; sleep 30" % pidfile, 5, 60)])

        async def scenario() -> None:
            runner.start()
            await wait_until(lambda: os.path.exists(pidfile) and os.path.getsize(pidfile) > 0)
            await runner.stop()

        self.run_async(scenario())
        with open(pidfile) as handle:
            pid = int(handle.read())
        deadline = time.monotonic() + 3
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(_gone(pid))


def runner_for(model: health.HealthModel, checks: list) -> health.CheckRunner:
    """Build a CheckRunner (a function so tests read top-down)."""
    return health.CheckRunner(model, checks)


# Keep asyncio imported for readers who add async helpers here.
_ = asyncio
