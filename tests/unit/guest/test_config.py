"""INI file and command line parsing of ha-guest-agent."""

from __future__ import annotations

import contextlib
import io
import os
import textwrap
from typing import List
from unittest import mock

from ha_guest.guest import agent, config
from ha_guest.guest.config import CheckConfig
from ha_guest.guest.localapi import DEFAULT_SOCKET
from ha_guest.protocol.constants import CHANNEL_NAME
from tests.unit.guest.base import AsyncTestCase

GOOD_INI = """\
[agent]
device = /tmp/chan.sock   ; or a UNIX socket path
port_name = org.example.port
interval_ms = 250          ; 100..60000
heartbeat = yes
api_socket = /tmp/x/agent.sock
log_level = debug

[check:sshd]
command = pidof sshd ; echo "# not a comment"
period_s = 2.5
timeout_s = 1

[check:disk]
command = test -w /
"""


class TestConfig(AsyncTestCase):
    """Good and bad values, defaults and CLI overrides."""

    def setUp(self) -> None:
        # The machine's own /etc/ha-guest/agent.conf must not leak in.
        patcher = mock.patch.object(config, "DEFAULT_CONFIG", "/nonexistent/ha-guest/agent.conf")
        patcher.start()
        self.addCleanup(patcher.stop)

    def write(self, text: str) -> str:
        path = os.path.join(self.make_tempdir(), "agent.conf")
        with open(path, "w") as handle:
            handle.write(textwrap.dedent(text))
        return path

    def load(self, argv: List[str]) -> config.AgentConfig:
        return config.load(argv)

    def assertBad(self, argv: List[str], *fragments: str) -> None:
        with self.assertRaises(config.ConfigError) as ctx:
            config.load(argv)
        for fragment in fragments:
            self.assertIn(fragment, str(ctx.exception))

    def test_defaults(self) -> None:
        cfg = config.merge(config.read_ini(self.write("")), config.build_parser().parse_args([]), "x")
        self.assertEqual(config.AgentConfig(), cfg)
        self.assertIsNone(cfg.device)
        self.assertEqual(CHANNEL_NAME, cfg.port_name)
        self.assertEqual(250, cfg.interval_ms)  # detection under 1 s with the host's defaults
        self.assertTrue(cfg.heartbeat)
        self.assertEqual(DEFAULT_SOCKET, cfg.api_socket)
        self.assertEqual([], cfg.checks)

    def test_good_ini(self) -> None:
        cfg = self.load(["--config", self.write(GOOD_INI)])
        self.assertEqual("/tmp/chan.sock", cfg.device)
        self.assertEqual("org.example.port", cfg.port_name)
        self.assertEqual(250, cfg.interval_ms)
        self.assertTrue(cfg.heartbeat)
        self.assertEqual("/tmp/x/agent.sock", cfg.api_socket)
        self.assertEqual("DEBUG", cfg.log_level)
        self.assertEqual(
            [CheckConfig("sshd", 'pidof sshd ; echo "# not a comment"', 2.5, 1.0),
             CheckConfig("disk", "test -w /", 5.0, 3.0)],
            cfg.checks,
        )

    def test_api_group(self) -> None:
        cfg = self.load(["--config", self.write("[agent]\napi_group = vnf-apps\n")])
        self.assertEqual("vnf-apps", cfg.api_group)
        self.assertEqual("ops", self.load(["--config", self.write("[agent]\napi_group = vnf-apps\n"),
                                           "--api-group", "ops"]).api_group)
        self.assertBad(["--api-group", "bad group"], "api_group")

    def test_cli_overrides_ini(self) -> None:
        cfg = self.load([
            "--config", self.write(GOOD_INI), "--device", "/dev/vport0p1", "--port-name", "other",
            "--interval-ms", "100", "--no-heartbeat", "--api-socket", "/tmp/y.sock", "--log-level", "WARNING",
            "--check", "sshd=true", "--check", "web=curl -sf http://localhost/ | grep ok",
            "--check-period", "7", "--check-timeout", "0.5",
        ])
        self.assertEqual("/dev/vport0p1", cfg.device)
        self.assertEqual("other", cfg.port_name)
        self.assertEqual(100, cfg.interval_ms)
        self.assertFalse(cfg.heartbeat)
        self.assertEqual("/tmp/y.sock", cfg.api_socket)
        self.assertIsNone(cfg.api_group)
        self.assertEqual("WARNING", cfg.log_level)
        by_name = {c.name: c for c in cfg.checks}
        self.assertEqual(CheckConfig("sshd", "true", 7.0, 0.5), by_name["sshd"])
        self.assertEqual(CheckConfig("web", "curl -sf http://localhost/ | grep ok", 7.0, 0.5), by_name["web"])
        # A file check without its own period takes the CLI default.
        self.assertEqual(CheckConfig("disk", "test -w /", 7.0, 0.5), by_name["disk"])

    def test_empty_api_socket_disables(self) -> None:
        self.assertIsNone(self.load(["--api-socket", ""]).api_socket)

    def test_heartbeat_false_in_file(self) -> None:
        self.assertFalse(self.load(["--config", self.write("[agent]\nheartbeat = off\n")]).heartbeat)

    def test_bad_interval(self) -> None:
        self.assertBad(["--interval-ms", "99"], "interval_ms", "between 100 and 60000")
        self.assertBad(["--interval-ms", "60001"], "interval")
        self.assertBad(["--interval-ms", "fast"], "must be an integer")
        self.assertBad(["--config", self.write("[agent]\ninterval_ms = 1.5\n")], "interval_ms")

    def test_bad_values(self) -> None:
        self.assertBad(["--config", self.write("[agent]\nheartbeat = maybe\n")], "heartbeat", "true or false")
        self.assertBad(["--log-level", "LOUD"], "log_level")
        self.assertBad(["--port-name", "bad name"], "port_name")
        self.assertBad(["--check", "nocommand"], "NAME=COMMAND")
        self.assertBad(["--check", "x="], "NAME=COMMAND")
        self.assertBad(["--check", "bad name=true"], "name")
        self.assertBad(["--check-period", "0"], "--check-period", "above 0")
        self.assertBad(["--check-timeout", "nan"], "--check-timeout")
        self.assertBad(["--check-timeout", "-1"], "--check-timeout")

    def test_bad_file(self) -> None:
        self.assertBad(["--config", "/nonexistent/agent.conf"], "cannot read", "/nonexistent/agent.conf")
        self.assertBad(["--config", self.write("no section\n")], "cannot parse")
        self.assertBad(["--config", self.write("[agnet]\n")], "unknown section [agnet]")
        self.assertBad(["--config", self.write("[agent]\nintervall = 5\n")], "unknown option 'intervall'")
        self.assertBad(["--config", self.write("[check:x]\nperiod_s = 1\n")], "[check:x]", "command")
        self.assertBad(["--config", self.write("[check:x]\ncommand = true\nperiod_s = soon\n")], "period_s")
        self.assertBad(["--config", self.write("[check:x]\ncommand = true\nretries = 3\n")], "retries")
        self.assertBad(["--config", self.write("[check:]\ncommand = true\n")], "name")

    def test_too_many_checks(self) -> None:
        argv = []
        for i in range(config.MAX_CHECKS + 1):
            argv += ["--check", "c%d=true" % i]
        self.assertBad(argv, "at most")

    def test_main_exit_code_2(self) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertEqual(2, agent.main(["--interval-ms", "5"]))
            self.assertEqual(2, agent.main(["--no-such-flag"]))
        self.assertIn("ha-guest-agent: error: ", err.getvalue())

    def test_main_help_exit_0(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(0, agent.main(["--help"]))
        self.assertIn("--check NAME=COMMAND", out.getvalue())
