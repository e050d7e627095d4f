"""The local API server over a real UNIX socket in a temp dir."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from typing import Any, Dict, Tuple

from ha_guest.guest import agent, api_server, config, localapi
from tests.unit.guest.base import AsyncTestCase

Conn = Tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(path: str) -> Conn:
    """Open a client connection to the API socket."""
    return await asyncio.open_unix_connection(path, limit=1 << 20)


async def call(conn: Conn, request: Any, raw: bool = False) -> Dict[str, Any]:
    """Send one request line and return the parsed reply line."""
    reader, writer = conn
    writer.write(request if raw else json.dumps(request).encode() + b"\n")
    await writer.drain()
    return json.loads(await asyncio.wait_for(reader.readline(), 5))


async def echo_dispatch(request: Dict[str, Any]) -> Dict[str, Any]:
    """A dispatch that answers every request with its op."""
    return localapi.ok(op=request["op"])


class ApiTestCase(AsyncTestCase):
    """Builds an agent whose local API lives in a temp dir (no channel is opened)."""

    def setUp(self) -> None:
        self.dir = os.path.join(self.make_tempdir(), "run", "ha-guest")
        self.path = os.path.join(self.dir, "agent.sock")
        cfg = config.AgentConfig(device="/nonexistent/chan", api_socket=self.path)
        self.agent = agent.Agent(cfg)
        assert self.agent.api is not None
        self.api: api_server.ApiServer = self.agent.api


class TestRequests(ApiTestCase):
    """report, clear, agent_status and error replies."""

    def test_report_clear_status(self) -> None:
        async def scenario() -> None:
            await self.api.start()
            try:
                conn = await connect(self.path)
                status = await call(conn, {"op": "agent_status"})
                self.assertTrue(status["ok"])
                self.assertFalse(status["connected"])
                self.assertIsNone(status["session"])
                self.assertFalse(status["registered"])
                self.assertEqual("healthy", status["health"])
                for key in ("challenges", "responses", "protocol_errors", "stale_frames", "reconnects"):
                    self.assertEqual(0, status["counters"][key])
                reply = await call(conn, {"op": "report", "source": "db", "health": "unhealthy",
                                          "reason": "lag", "expires_in_s": 30})
                self.assertEqual({"ok": True}, reply)
                status = await call(conn, {"op": "agent_status"})
                self.assertEqual(("unhealthy", "db: lag"), (status["health"], status["reason"]))
                self.assertEqual("db", status["reports"][0]["source"])
                self.assertEqual({"ok": True, "cleared": True}, await call(conn, {"op": "clear", "source": "db"}))
                self.assertEqual({"ok": True, "cleared": False}, await call(conn, {"op": "clear", "source": "db"}))
                self.assertEqual("healthy", (await call(conn, {"op": "agent_status"}))["health"])
                conn[1].close()
            finally:
                await self.api.stop()

        self.run_async(scenario())

    def test_bad_requests_keep_connection(self) -> None:
        async def scenario() -> None:
            await self.api.start()
            try:
                conn = await connect(self.path)
                self.assertEqual("bad_request", (await call(conn, b"not json\n", raw=True))["error"])
                self.assertEqual("bad_request", (await call(conn, {"op": "fly"}))["error"])
                self.assertEqual("bad_request", (await call(conn, [1, 2]))["error"])
                reply = await call(conn, {"op": "report", "health": "healthy"})
                self.assertEqual("bad_request", reply["error"])
                self.assertIn("source", reply["detail"])
                self.assertEqual("host_unavailable", (await call(conn, {"op": "broadcast", "payload": ""}))["error"])
                self.assertEqual("host_unavailable", (await call(conn, {"op": "group_status"}))["error"])
                self.assertTrue((await call(conn, {"op": "agent_status"}))["ok"])
                conn[1].close()
            finally:
                await self.api.stop()

        self.run_async(scenario())

    def test_oversized_line(self) -> None:
        async def scenario() -> None:
            await self.api.start()
            try:
                conn = await connect(self.path)
                big = b'{"op":"report","reason":"' + b"x" * (localapi.MAX_LINE_BYTES + 100) + b'"}\n'
                reply = await call(conn, big + b'{"op":"agent_status"}\n', raw=True)
                self.assertEqual("too_large", reply["error"])
                # Exactly one error, then the reader is back in step at the next line.
                reply = json.loads(await asyncio.wait_for(conn[0].readline(), 5))
                self.assertTrue(reply["ok"])
                self.assertIn("counters", reply)
                conn[1].close()
            finally:
                await self.api.stop()

        self.run_async(scenario())

    def test_last_request_without_newline(self) -> None:
        async def scenario() -> None:
            await self.api.start()
            try:
                reader, writer = await connect(self.path)
                writer.write(b'{"op":"clear","source":"x"}')
                writer.write_eof()
                self.assertEqual({"ok": True, "cleared": False}, json.loads(await asyncio.wait_for(reader.read(), 5)))
            finally:
                await self.api.stop()

        self.run_async(scenario())


class TestLimits(AsyncTestCase):
    """Too many clients and slow listeners."""

    def test_too_many_clients(self) -> None:
        path = os.path.join(self.make_tempdir(), "api.sock")
        server = api_server.ApiServer(path, echo_dispatch, max_clients=3)

        async def scenario() -> None:
            await server.start()
            try:
                conns = [await connect(path) for _ in range(3)]
                for conn in conns:
                    self.assertTrue((await call(conn, {"op": "agent_status"}))["ok"])
                reader, _ = await connect(path)
                line = await asyncio.wait_for(reader.readline(), 5)
                self.assertEqual({"ok": False, "error": "busy", "detail": "too many clients"}, json.loads(line))
                self.assertEqual(b"", await asyncio.wait_for(reader.read(), 5))
                self.assertEqual(1, server.refused)
                # A slot frees up when a client leaves.
                conns[0][1].close()
                for _ in range(100):
                    if server.clients < 3:
                        break
                    await asyncio.sleep(0.01)
                self.assertTrue((await call(await connect(path), {"op": "agent_status"}))["ok"])
            finally:
                await server.stop()

        self.run_async(scenario())

    def test_idle_client_is_closed(self) -> None:
        path = os.path.join(self.make_tempdir(), "api.sock")
        server = api_server.ApiServer(path, echo_dispatch, idle_timeout_s=0.2)

        async def scenario() -> None:
            await server.start()
            try:
                reader, writer = await connect(path)
                self.assertTrue((await call((reader, writer), {"op": "agent_status"}))["ok"])
                # Silent from now on: the server hangs up and frees the slot.
                self.assertEqual(b"", await asyncio.wait_for(reader.read(), 5))
                for _ in range(100):
                    if server.clients == 0:
                        break
                    await asyncio.sleep(0.01)
                self.assertEqual(0, server.clients)
            finally:
                await server.stop()

        self.run_async(scenario())

    def test_listener_backlog_drops_oldest(self) -> None:
        path = os.path.join(self.make_tempdir(), "api.sock")
        server = api_server.ApiServer(path, echo_dispatch)
        backlog = localapi.MAX_LISTENER_BACKLOG

        async def scenario() -> None:
            await server.start()
            try:
                fast = await connect(path)
                self.assertEqual({"ok": True}, await call(fast, {"op": "listen"}))
                for _ in range(100):
                    if server.listeners == 1:
                        break
                    await asyncio.sleep(0.01)
                self.assertEqual(1, server.listeners)
                # Published in one go, the listener's pump cannot run in between.
                for i in range(backlog + 100):
                    server.publish({"event": "broadcast", "sender": "s", "payload": str(i)})
                first = json.loads(await asyncio.wait_for(fast[0].readline(), 5))
                self.assertEqual({"event": "dropped", "count": 100}, first)
                events = [json.loads(await asyncio.wait_for(fast[0].readline(), 5)) for _ in range(backlog)]
                self.assertEqual([str(i) for i in range(100, backlog + 100)], [e["payload"] for e in events])
                fast[1].close()
                for _ in range(100):
                    if server.listeners == 0:
                        break
                    await asyncio.sleep(0.01)
                self.assertEqual(0, server.listeners)
            finally:
                await server.stop()

        self.run_async(scenario())


class TestSocketFile(AsyncTestCase):
    """Mode, parent dir, stale and live sockets, removal."""

    def test_mode_dir_and_removal(self) -> None:
        path = os.path.join(self.make_tempdir(), "a", "b", "agent.sock")
        server = api_server.ApiServer(path, echo_dispatch)

        async def scenario() -> None:
            await server.start()
            mode = os.stat(path).st_mode
            self.assertTrue(stat.S_ISSOCK(mode))
            self.assertEqual(0o660, stat.S_IMODE(mode))
            await server.stop()
            self.assertFalse(os.path.exists(path))

        self.run_async(scenario())

    def test_group_ownership(self) -> None:
        import grp

        group = grp.getgrgid(os.getgid())
        path = os.path.join(self.make_tempdir(), "agent.sock")
        server = api_server.ApiServer(path, echo_dispatch, group=group.gr_name)

        async def scenario() -> None:
            await server.start()
            self.assertEqual(group.gr_gid, os.stat(path).st_gid)
            await server.stop()

        self.run_async(scenario())

    def test_unknown_group_refused(self) -> None:
        path = os.path.join(self.make_tempdir(), "agent.sock")
        server = api_server.ApiServer(path, echo_dispatch, group="no-such-group-ha-guest")

        async def scenario() -> None:
            with self.assertRaises(OSError) as ctx:
                await server.start()
            self.assertIn("no-such-group-ha-guest", str(ctx.exception))
            await server.stop()

        self.run_async(scenario())

    def test_stale_socket_replaced(self) -> None:
        path = os.path.join(self.make_tempdir(), "agent.sock")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()
        server = api_server.ApiServer(path, echo_dispatch)

        async def scenario() -> None:
            await server.start()
            try:
                self.assertTrue((await call(await connect(path), {"op": "agent_status"}))["ok"])
            finally:
                await server.stop()

        self.run_async(scenario())

    def test_live_socket_and_plain_file_refused(self) -> None:
        tmp = self.make_tempdir()
        path = os.path.join(tmp, "agent.sock")
        plain = os.path.join(tmp, "plain")
        open(plain, "w").close()

        async def scenario() -> None:
            first = api_server.ApiServer(path, echo_dispatch)
            await first.start()
            try:
                with self.assertRaises(api_server.ApiSocketInUse):
                    await api_server.ApiServer(path, echo_dispatch).start()
                self.assertTrue((await call(await connect(path), {"op": "agent_status"}))["ok"])
            finally:
                await first.stop()
            with self.assertRaises(api_server.ApiSocketInUse):
                await api_server.ApiServer(plain, echo_dispatch).start()
            self.assertTrue(os.path.isfile(plain))

        self.run_async(scenario())

    def test_replaced_socket_not_removed(self) -> None:
        path = os.path.join(self.make_tempdir(), "agent.sock")
        server = api_server.ApiServer(path, echo_dispatch)

        async def scenario() -> None:
            await server.start()
            os.unlink(path)
            other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            other.bind(path)
            try:
                await server.stop()
                self.assertTrue(os.path.exists(path), "someone else's socket was removed")
            finally:
                other.close()

        self.run_async(scenario())
