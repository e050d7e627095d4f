"""Tests of ha-guest-client (ha_guest.guest.cli) against a fake agent on a real UNIX socket."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
from typing import List, Optional, Tuple
from unittest import mock

import testtools

from ha_guest.guest import cli, localapi
from tests.unit.guest import fake_agent
from tests.unit.guest.fake_agent import MEMBERS, PEER_UUID, SELF_UUID, FakeAgent


class CliTestCase(testtools.TestCase):
    """Runs cli.main in-process against a fake agent and captures its output."""

    def setUp(self) -> None:
        super().setUp()
        self.agent = FakeAgent().start()
        self.addCleanup(self.agent.stop)
        # The developer's environment must not pick the socket.
        patcher = mock.patch.dict(os.environ)
        patcher.start()
        self.addCleanup(patcher.stop)
        os.environ.pop(cli.SOCKET_ENV, None)

    def run_cli(self, *args: str, stdin: Optional[bytes] = None) -> Tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        argv: List[str] = ["--socket", self.agent.path, "--timeout", "3", *args]
        with contextlib.ExitStack() as stack:
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            if stdin is not None:
                stack.enter_context(mock.patch.object(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin))))
            code = cli.main(argv)
        return code, out.getvalue(), err.getvalue()


class TestReport(CliTestCase):
    """report and clear."""

    def test_report_healthy(self) -> None:
        self.assertEqual((0, "", ""), self.run_cli("report", "healthy"))
        self.assertEqual(
            [{"op": "report", "source": "cli", "health": "healthy", "reason": "", "expires_in_s": None}],
            self.agent.requests,
        )

    def test_report_unhealthy(self) -> None:
        code, _, _ = self.run_cli(
            "report", "unhealthy", "--source", "db", "--reason", "disk full", "--expires-in", "30"
        )
        self.assertEqual(0, code)
        self.assertEqual(
            {"op": "report", "source": "db", "health": "unhealthy", "reason": "disk full", "expires_in_s": 30.0},
            self.agent.requests[0],
        )

    def test_reason_needs_unhealthy(self) -> None:
        code, _, err = self.run_cli("report", "healthy", "--reason", "x")
        self.assertEqual(cli.EXIT_USAGE, code)
        self.assertIn("--reason", err)
        self.assertEqual([], self.agent.requests)

    def test_bad_expiry(self) -> None:
        self.assertEqual(cli.EXIT_USAGE, self.run_cli("report", "healthy", "--expires-in", "-1")[0])

    def test_clear(self) -> None:
        self.assertEqual((0, "", ""), self.run_cli("clear", "--source", "db"))
        self.assertEqual([{"op": "clear", "source": "db"}], self.agent.requests)

    def test_refused(self) -> None:
        code, out, err = self.run_cli("report", "healthy", "--source", "no spaces")
        self.assertEqual(cli.EXIT_REFUSED, code)
        self.assertTrue(err.startswith("bad_request: source "), err)


class TestStatus(CliTestCase):
    """status, human readable and JSON."""

    def test_human(self) -> None:
        code, out, _ = self.run_cli("status")
        self.assertEqual(0, code)
        self.assertIn("connected (session s-1, protocol version 1)", out)
        self.assertIn("registered (interval 1000 ms, miss threshold 3)", out)
        self.assertIn("health:     unhealthy: check sshd exited 1: no sshd", out)
        self.assertIn("\n  sshd  unhealthy  check sshd exited 1: no sshd\n", out)
        self.assertIn("\n  app  healthy  expires in 12.5s\n", out)
        self.assertIn("challenges=4", out)

    def test_human_minimal(self) -> None:
        self.agent.replies["agent_status"] = localapi.ok(connected=False, registered=False, health="healthy")
        code, out, _ = self.run_cli("status")
        self.assertEqual(0, code)
        self.assertIn("not connected", out)
        self.assertIn("heartbeat:  not registered", out)
        self.assertIn("checks:     none", out)

    def test_heartbeat_off(self) -> None:
        self.agent.replies["agent_status"] = localapi.ok(
            connected=True, heartbeat=False, registered=False, device="/dev/vport1p1", health="healthy"
        )
        code, out, _ = self.run_cli("status")
        self.assertEqual(0, code)
        self.assertIn("heartbeat:  off", out)
        self.assertIn("channel:    /dev/vport1p1", out)

    def test_heartbeat_not_enabled_by_the_flavor(self) -> None:
        self.agent.replies["agent_status"] = localapi.ok(
            connected=True, heartbeat=True, heartbeat_state="not_enabled", registered=False, health="healthy"
        )
        code, out, _ = self.run_cli("status")
        self.assertEqual(0, code)
        self.assertIn("heartbeat:  not enabled for this instance by its flavor (server group messaging only)", out)

    def test_json(self) -> None:
        code, out, _ = self.run_cli("status", "--json")
        expected = dict(fake_agent.STATUS)
        del expected["ok"]
        self.assertEqual((0, expected), (code, json.loads(out)))


class TestBroadcast(CliTestCase):
    """broadcast from text, a file or standard input."""

    def test_text(self) -> None:
        self.assertEqual(0, self.run_cli("broadcast", "hello peers")[0])
        self.assertEqual([{"op": "broadcast", "payload": b"hello peers"}], self.agent.requests)

    def test_file(self) -> None:
        path = os.path.join(self.agent.dir, "msg")
        with open(path, "wb") as handle:
            handle.write(b"\x00\xff" * 1525)
        self.assertEqual(0, self.run_cli("broadcast", "--file", path)[0])
        self.assertEqual(b"\x00\xff" * 1525, self.agent.requests[0]["payload"])

    def test_stdin(self) -> None:
        self.assertEqual(0, self.run_cli("broadcast", "-", stdin=b"from stdin\n")[0])
        self.assertEqual(b"from stdin\n", self.agent.requests[0]["payload"])

    def test_too_large(self) -> None:
        code, _, err = self.run_cli("broadcast", "x" * 3051)
        self.assertEqual(cli.EXIT_REFUSED, code)
        self.assertTrue(err.startswith("too_large: "), err)
        code, _, err = self.run_cli("broadcast", "-", stdin=b"y" * 100000)
        self.assertEqual(cli.EXIT_REFUSED, code)
        self.assertIn("more than 3050 bytes", err)
        self.assertEqual([], self.agent.requests)

    def test_usage(self) -> None:
        self.assertEqual(cli.EXIT_USAGE, self.run_cli("broadcast")[0])
        self.assertEqual(cli.EXIT_USAGE, self.run_cli("broadcast", "text", "--file", "f")[0])
        code, _, err = self.run_cli("broadcast", "--file", os.path.join(self.agent.dir, "missing"))
        self.assertEqual(cli.EXIT_USAGE, code)
        self.assertIn("cannot read", err)

    def test_host_unavailable(self) -> None:
        self.agent.replies["broadcast"] = localapi.error(localapi.E_HOST_UNAVAILABLE, "no host session")
        self.assertEqual((1, "", "host_unavailable: no host session\n"), self.run_cli("broadcast", "x"))


class TestGroupStatus(CliTestCase):
    """group-status."""

    def test_table(self) -> None:
        code, out, _ = self.run_cli("group-status", "--timeout", "1.5")
        self.assertEqual(0, code)
        lines = out.splitlines()
        self.assertEqual(["UUID", "STATE", "POWER", "STATE"], lines[0].split())
        self.assertEqual([SELF_UUID, "active", "running", "(self)"], lines[1].split())
        self.assertEqual([PEER_UUID, "stopped", "shutdown"], lines[2].split())
        self.assertEqual(1.5, self.agent.requests[0]["timeout_s"])

    def test_json(self) -> None:
        code, out, _ = self.run_cli("group-status", "--json")
        self.assertEqual((0, MEMBERS), (code, json.loads(out)))

    def test_nack(self) -> None:
        self.agent.replies["group_status"] = localapi.error(localapi.E_NACK, "no_group")
        self.assertEqual((1, "", "nack: no_group\n"), self.run_cli("group-status"))


class TestListen(CliTestCase):
    """listen prints events as they arrive."""

    def test_human(self) -> None:
        self.agent.events.put(fake_agent.broadcast_event(b"hello"))
        self.agent.events.put(fake_agent.broadcast_event(b"\xff\x00"))
        self.agent.events.put(fake_agent.broadcast_event(b"line\n\x1b[2J"))
        self.agent.events.put(
            {"event": "notification", "member": PEER_UUID, "event_type": "stop", "state": "stopped", "power_state": ""}
        )
        self.agent.events.put({"event": "dropped", "count": 7})
        code, out, _ = self.run_cli("listen", "--count", "5")
        self.assertEqual(0, code)
        self.assertEqual(
            [
                "broadcast from %s: hello" % PEER_UUID,
                "broadcast from %s (base64): /wA=" % PEER_UUID,
                "broadcast from %s: line\\n\\x1b[2J" % PEER_UUID,
                "notification: member %s stop state=stopped power_state=-" % PEER_UUID,
                "dropped: 7 events (this listener was too slow)",
            ],
            out.splitlines(),
        )
        self.assertTrue(self.agent.listener_gone.wait(3.0))

    def test_json(self) -> None:
        event = fake_agent.broadcast_event(b"\xff")
        self.agent.events.put(event)
        code, out, _ = self.run_cli("listen", "--count", "1", "--json")
        self.assertEqual((0, event), (code, json.loads(out)))
        self.assertEqual("/w==", base64.b64encode(b"\xff").decode())

    def test_agent_stops(self) -> None:
        self.agent.events.put({"event": "dropped", "count": 1})
        self.agent.events.put(fake_agent.CLOSE)
        code, out, err = self.run_cli("listen")
        self.assertEqual(cli.EXIT_UNAVAILABLE, code)
        self.assertIn("dropped: 1", out)
        self.assertIn("agent unavailable", err)

    def test_count_must_be_positive(self) -> None:
        self.assertEqual(cli.EXIT_USAGE, self.run_cli("listen", "--count", "0")[0])


class TestGlobal(CliTestCase):
    """Socket selection, exit codes and help."""

    def test_unavailable(self) -> None:
        missing = os.path.join(self.agent.dir, "missing.sock")
        code, out, err = self.run_cli("--socket", missing, "status")
        self.assertEqual((cli.EXIT_UNAVAILABLE, ""), (code, out))
        self.assertIn("no agent socket at %s" % missing, err)

    def test_socket_from_environment(self) -> None:
        os.environ[cli.SOCKET_ENV] = self.agent.path
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(0, cli.main(["clear"]))
        self.assertEqual(1, len(self.agent.requests))
        # The flag wins over the environment.
        os.environ[cli.SOCKET_ENV] = os.path.join(self.agent.dir, "missing.sock")
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(cli.EXIT_UNAVAILABLE, cli.main(["clear"]))
            self.assertEqual(0, cli.main(["--socket", self.agent.path, "clear"]))

    def test_default_socket(self) -> None:
        self.assertEqual(localapi.DEFAULT_SOCKET, cli.build_parser().parse_args(["status"]).socket)

    def test_usage(self) -> None:
        self.assertEqual(cli.EXIT_USAGE, self.run_cli()[0])
        self.assertEqual(cli.EXIT_USAGE, self.run_cli("frobnicate")[0])
        code, out, _ = self.run_cli("--help")
        self.assertEqual(0, code)
        self.assertIn("group-status", out)

    def test_sgm_help_says_what_is_needed(self) -> None:
        for command in ("broadcast", "group-status", "listen"):
            code, out, _ = self.run_cli(command, "--help")
            self.assertEqual(0, code)
            self.assertIn("ha_guest:server_group_messaging=true", " ".join(out.split()), command)

    def test_timeout(self) -> None:
        self.agent.replies["agent_status"] = fake_agent.HANG
        code, _, err = self.run_cli("--timeout", "0.3", "status")
        self.assertEqual(cli.EXIT_UNAVAILABLE, code)
        self.assertIn("in time", err)

    def test_python_m(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "ha_guest.guest.cli", "--socket", self.agent.path, "status", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertEqual("s-1", json.loads(result.stdout)["session"])
