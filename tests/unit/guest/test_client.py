"""Tests of the ha_guest.guest.client library against a fake agent on a real UNIX socket."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import Any, Callable, Dict, List

import testtools

from ha_guest.guest import client as client_mod
from ha_guest.guest import localapi
from ha_guest.guest.client import AgentClient, AgentError, AgentTimeout, AgentUnavailable, HealthReporter
from tests.unit.guest import fake_agent
from tests.unit.guest.fake_agent import CLOSE, HANG, MEMBERS, PEER_UUID, FakeAgent


class ClientTestCase(testtools.TestCase):
    """Starts a fake agent and a client with short timeouts."""

    def setUp(self) -> None:
        super().setUp()
        self.agent = FakeAgent().start()
        self.addCleanup(self.agent.stop)
        self.client = AgentClient(self.agent.path, timeout=2.0)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail("condition not met within %ss" % timeout)
            time.sleep(0.01)


class TestRequests(ClientTestCase):
    """Each method sends one valid request line and handles the reply."""

    def test_report_healthy(self) -> None:
        self.client.report_healthy("app")
        self.assertEqual(
            [{"op": "report", "source": "app", "health": "healthy", "reason": ""}],
            [json.loads(line) for line in self.agent.lines],
        )
        self.assertEqual(
            {"op": "report", "source": "app", "health": "healthy", "reason": "", "expires_in_s": None},
            self.agent.requests[0],
        )

    def test_report_healthy_expiring(self) -> None:
        self.client.report_healthy("app", expires_in_s=10)
        self.assertEqual(10.0, self.agent.requests[0]["expires_in_s"])

    def test_report_unhealthy(self) -> None:
        self.client.report_unhealthy("db", "replication lag 30s", expires_in_s=2.5)
        self.assertEqual(
            {
                "op": "report",
                "source": "db",
                "health": "unhealthy",
                "reason": "replication lag 30s",
                "expires_in_s": 2.5,
            },
            self.agent.requests[0],
        )

    def test_clear(self) -> None:
        self.client.clear("db")
        self.assertEqual([{"op": "clear", "source": "db"}], self.agent.requests)

    def test_agent_status(self) -> None:
        status = self.client.agent_status()
        expected = dict(fake_agent.STATUS)
        del expected["ok"]
        self.assertEqual(expected, status)
        self.assertEqual([{"op": "agent_status"}], self.agent.requests)

    def test_broadcast(self) -> None:
        self.client.broadcast(b"\x00hello\xff")
        self.assertEqual([{"op": "broadcast", "payload": b"\x00hello\xff"}], self.agent.requests)
        self.assertEqual("AGhlbGxv/w==", json.loads(self.agent.lines[0])["payload"])

    def test_broadcast_limit(self) -> None:
        self.client.broadcast(bytearray(3050))
        exc = self.assertRaises(AgentError, self.client.broadcast, b"x" * 3051)
        self.assertEqual(localapi.E_TOO_LARGE, exc.code)
        self.assertIn("3051 bytes", exc.detail)
        self.assertIn("3050", exc.detail)
        self.assertEqual(1, len(self.agent.requests))

    def test_broadcast_needs_bytes(self) -> None:
        self.assertRaises(TypeError, self.client.broadcast, "text")

    def test_group_status(self) -> None:
        self.assertEqual(MEMBERS, self.client.group_status(timeout_s=1.5))
        self.assertEqual([{"op": "group_status", "timeout_s": 1.5}], self.agent.requests)

    def test_group_status_waits_for_the_host(self) -> None:
        # The agent may take timeout_s to answer: the client allows that on top of its own timeout.
        def slow(request: Dict[str, Any]) -> Dict[str, Any]:
            time.sleep(0.5)
            return localapi.ok(members=[])

        self.agent.replies["group_status"] = slow
        quick = AgentClient(self.agent.path, timeout=0.2)
        self.assertEqual([], quick.group_status(timeout_s=1.0))

    def test_group_status_bad_reply(self) -> None:
        self.agent.replies["group_status"] = localapi.ok(members={"a": 1})
        exc = self.assertRaises(AgentError, self.client.group_status)
        self.assertEqual(client_mod.E_BAD_REPLY, exc.code)

    def test_connection_per_call(self) -> None:
        self.client.clear("a")
        self.client.clear("b")
        self.assertEqual(2, len(self.agent.requests))


class TestErrors(ClientTestCase):
    """Error replies, local validation, unavailable agents and bad replies."""

    def test_error_reply(self) -> None:
        self.agent.replies["broadcast"] = localapi.error(localapi.E_HOST_UNAVAILABLE, "no host session")
        exc = self.assertRaises(AgentError, self.client.broadcast, b"hi")
        self.assertEqual((localapi.E_HOST_UNAVAILABLE, "no host session"), (exc.code, exc.detail))
        self.assertEqual("host_unavailable: no host session", str(exc))

    def test_nack_reply(self) -> None:
        self.agent.replies["group_status"] = localapi.error(localapi.E_NACK, "no_group")
        exc = self.assertRaises(AgentError, self.client.group_status)
        self.assertEqual(localapi.E_NACK, exc.code)

    def test_invalid_request_refused_locally(self) -> None:
        exc = self.assertRaises(AgentError, self.client.report_healthy, "bad source")
        self.assertEqual(localapi.E_BAD_REQUEST, exc.code)
        exc = self.assertRaises(AgentError, self.client.report_healthy, "app", 0)
        self.assertEqual(localapi.E_BAD_REQUEST, exc.code)
        exc = self.assertRaises(AgentError, self.client.group_status, 60)
        self.assertEqual(localapi.E_BAD_REQUEST, exc.code)
        self.assertEqual([], self.agent.lines)

    def test_missing_socket(self) -> None:
        missing = AgentClient(os.path.join(self.agent.dir, "nothing.sock"), timeout=1.0)
        exc = self.assertRaises(AgentUnavailable, missing.agent_status)
        self.assertIn("no agent socket", str(exc))

    def test_refused(self) -> None:
        path = os.path.join(self.agent.dir, "dead.sock")
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(path)
        dead.close()  # the file stays, nobody listens: like a crashed agent
        exc = self.assertRaises(AgentUnavailable, AgentClient(path, 1.0).clear, "x")
        self.assertIn("refuses connections", str(exc))

    def test_closed_without_reply(self) -> None:
        self.agent.replies["clear"] = CLOSE
        exc = self.assertRaises(AgentUnavailable, self.client.clear, "x")
        self.assertIn("closed", str(exc))

    def test_timeout(self) -> None:
        self.agent.replies["agent_status"] = HANG
        quick = AgentClient(self.agent.path, timeout=0.3)
        started = time.monotonic()
        self.assertRaises(AgentTimeout, quick.agent_status)
        self.assertLess(time.monotonic() - started, 2.0)

    def test_oversized_reply_line(self) -> None:
        self.agent.replies["agent_status"] = b'{"ok":true,"x":"' + b"a" * 20000 + b'"}\n'
        exc = self.assertRaises(AgentError, self.client.agent_status)
        self.assertEqual(client_mod.E_BAD_REPLY, exc.code)
        self.assertIn("longer than 16384", exc.detail)

    def test_endless_reply_without_newline(self) -> None:
        def flood(request: Dict[str, Any]) -> bytes:
            return b"a" * (1024 * 1024)

        self.agent.replies["agent_status"] = flood
        exc = self.assertRaises(AgentError, self.client.agent_status)
        self.assertEqual(client_mod.E_BAD_REPLY, exc.code)

    def test_not_json(self) -> None:
        self.agent.replies["clear"] = b"hello\n"
        exc = self.assertRaises(AgentError, self.client.clear, "x")
        self.assertEqual(client_mod.E_BAD_REPLY, exc.code)

    def test_no_ok_field(self) -> None:
        self.agent.replies["clear"] = {"fine": True}
        exc = self.assertRaises(AgentError, self.client.clear, "x")
        self.assertEqual(client_mod.E_BAD_REPLY, exc.code)


class TestListen(ClientTestCase):
    """The listen stream: events, bounded lines, idle timeouts and a clean close."""

    def test_events(self) -> None:
        notification = {
            "event": "notification",
            "member": PEER_UUID,
            "event_type": "power_off",
            "state": "stopped",
            "power_state": "shutdown",
        }
        self.agent.events.put(fake_agent.broadcast_event(b"\x01hi"))
        # Two events in one write: the reader must split them.
        self.agent.events.put(localapi.dumps_line(notification) + localapi.dumps_line({"event": "dropped", "count": 3}))
        with self.client.listen(idle_timeout=3.0) as events:
            received = [next(events) for _ in range(3)]
        self.assertEqual({"event": "broadcast", "sender": PEER_UUID, "payload": b"\x01hi"}, received[0])
        self.assertEqual(notification, received[1])
        self.assertEqual({"event": "dropped", "count": 3}, received[2])
        self.assertEqual([{"op": "listen"}], self.agent.requests)
        self.assertTrue(self.agent.listener_gone.wait(3.0))
        self.assertRaises(StopIteration, next, events)

    def test_idle_timeout_keeps_the_stream(self) -> None:
        events = self.client.listen(idle_timeout=0.2)
        self.addCleanup(events.close)
        self.assertRaises(AgentTimeout, next, events)
        self.agent.events.put({"event": "dropped", "count": 1})
        self.assertEqual({"event": "dropped", "count": 1}, next(events))

    def test_agent_goes_away(self) -> None:
        events = self.client.listen(idle_timeout=3.0)
        self.addCleanup(events.close)
        self.agent.events.put(CLOSE)
        self.assertRaises(AgentUnavailable, next, events)
        self.assertRaises(StopIteration, next, events)

    def test_refused(self) -> None:
        self.agent.replies["listen"] = localapi.error(localapi.E_BUSY, "too many clients")
        exc = self.assertRaises(AgentError, self.client.listen)
        self.assertEqual(localapi.E_BUSY, exc.code)

    def test_oversized_event(self) -> None:
        events = self.client.listen(idle_timeout=3.0)
        self.addCleanup(events.close)
        self.agent.events.put(b'{"event":"x","y":"' + b"a" * 40000 + b'"}\n')
        exc = self.assertRaises(AgentError, next, events)
        self.assertEqual(client_mod.E_BAD_REPLY, exc.code)

    def test_bad_broadcast_payload(self) -> None:
        events = self.client.listen(idle_timeout=3.0)
        self.addCleanup(events.close)
        self.agent.events.put({"event": "broadcast", "sender": PEER_UUID, "payload": "!!"})
        self.agent.events.put({"event": "dropped", "count": 1})
        self.assertRaises(AgentError, next, events)
        self.assertEqual("dropped", next(events)["event"])

    def test_missing_socket(self) -> None:
        missing = AgentClient(os.path.join(self.agent.dir, "nothing.sock"), timeout=1.0)
        self.assertRaises(AgentUnavailable, missing.listen)


class TestHealthReporter(ClientTestCase):
    """The background renewer of an expiring report."""

    def reports(self) -> List[Dict[str, Any]]:
        return [r for r in self.agent.requests if r["op"] == "report"]

    def test_renews_and_clears(self) -> None:
        reporter = HealthReporter(self.client, "app", interval_s=0.05, expires_in_s=1.0)
        with reporter:
            self.wait_for(lambda: len(self.reports()) >= 3)
            reporter.set_unhealthy("queue stuck")
            self.wait_for(lambda: self.reports()[-1]["health"] == "unhealthy")
            self.assertEqual("queue stuck", self.reports()[-1]["reason"])
            reporter.set_healthy()
            self.wait_for(lambda: self.reports()[-1]["health"] == "healthy")
        self.assertEqual({"op": "clear", "source": "app"}, self.agent.requests[-1])
        self.assertEqual({"app"}, {r["source"] for r in self.reports()})
        self.assertEqual({1.0}, {r["expires_in_s"] for r in self.reports()})
        self.assertIsNone(reporter.last_error)

    def test_stop_without_clear(self) -> None:
        reporter = HealthReporter(self.client, "app", interval_s=0.05).start()
        self.wait_for(lambda: len(self.reports()) >= 1)
        reporter.stop(clear=False)
        self.assertNotIn("clear", [r["op"] for r in self.agent.requests])
        self.assertAlmostEqual(0.15, self.reports()[0]["expires_in_s"])

    def test_survives_missing_agent(self) -> None:
        self.quiet_logs()
        missing = AgentClient(os.path.join(self.agent.dir, "nothing.sock"), timeout=0.5)
        reporter = HealthReporter(missing, "app", interval_s=0.05).start()
        self.wait_for(lambda: reporter.last_error is not None)
        self.assertIsInstance(reporter.last_error, AgentUnavailable)
        reporter.stop()

    def test_validation(self) -> None:
        self.assertRaises(ValueError, HealthReporter, self.client, "app", 5.0, 5.0)
        self.assertRaises(ValueError, HealthReporter, self.client, "app", 0)
        self.assertRaises(AgentError, HealthReporter, self.client, "bad source")
        reporter = HealthReporter(self.client, "app", interval_s=10.0)
        self.assertEqual(30.0, reporter.expires_in_s)

    def quiet_logs(self) -> None:
        # Keep the expected warnings out of the test output.
        logger = logging.getLogger(client_mod.__name__)
        logger.disabled = True
        self.addCleanup(setattr, logger, "disabled", False)
