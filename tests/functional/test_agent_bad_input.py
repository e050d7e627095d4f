"""Bad input from the host side never crashes the guest agent; errors are answered, rate-limited."""

from __future__ import annotations

import json
import re

from ha_guest.protocol import heartbeat
from ha_guest.protocol.envelope import encode_message
from ha_guest.protocol.limits import ERROR_REPLY_BURST, ERROR_REPLY_RATE
from ha_guest.testing import ScriptedHost
from ha_guest.testing import events as ev
from tests.functional import base

#: Log lines about protocol errors (the first of a burst, then "N more protocol errors" summaries).
PROTOCOL_ERROR_LOG = re.compile(r'protocol error', re.I)
JUNK_LINES = 1000


class TestBadInput(base.FunctionalTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.host_sock, guest_sock = self.add_channel()
        self.host = self.start_host(self.host_sock)
        # INFO, as in production: the rate limit of the log is what is under test.
        self.agent = self.start_agent(guest_sock, extra=['--log-level', 'INFO'])
        self.wait_registered(self.host)
        self.host.wait_for(ev.HEALTHY, timeout=base.TIMEOUT)

    def _reply_to(self, data: bytes) -> ev.Event:
        mark = self.host.mark()
        self.host.send(data)
        return self.host.wait_for(ev.ERROR, since=mark, timeout=base.TIMEOUT)

    def _envelope(self, app: str, type_: str, seq: int, data: dict) -> bytes:
        obj = {'v': 1, 'app': app, 'type': type_, 'seq': seq, 'session': self.host.session, 'data': data}
        return json.dumps(obj).encode() + b'\n'

    def assert_answering(self, count: int = 5) -> None:
        start = self.host.mark()
        since = self.host.events()[start - 1].t if start else 0.0

        def answered() -> bool:
            return len([c for c in self.host.challenges(self.host.session) if c.sent_at > since and c.on_time]) >= count

        self.host.wait_until(answered, timeout=base.TIMEOUT, what='%d answers after the bad input' % count)
        self.assertIsNone(self.agent.proc.poll(), 'the agent died')

    def test_each_kind_of_junk_gets_an_error_reply(self) -> None:
        self.assertEqual('invalid_json', self._reply_to(b'{"v": 1, "app": \n').data['code'])
        self.assert_answering(2)
        self.assertEqual('invalid_utf8', self._reply_to(b'{"v": "\xff\xfe"}\n').data['code'])
        self.assert_answering(2)
        # A line far over the frame limit, without a newline for a while, then the newline.
        mark = self.host.mark()
        self.host.send(b'x' * 100_000)
        self.host.send(b'\n')
        too_large = self.host.wait_for(ev.ERROR, since=mark, timeout=base.TIMEOUT)
        self.assertEqual('frame_too_large', too_large.data['code'])
        self.assert_answering(2)
        unknown = self._reply_to(self._envelope('heartbeat', 'bogus', 4242, {}))
        self.assertEqual('unknown_type', unknown.data['code'])
        self.assertEqual(4242, unknown.data['ref_seq'])
        self.assert_answering(2)
        wrong_way = encode_message(heartbeat.Response('abc', 'healthy', ''), 4343, self.host.session)
        reply = self._reply_to(wrong_way)
        self.assertEqual('unexpected_message', reply.data['code'])
        self.assertEqual(4343, reply.data['ref_seq'])
        self.assert_answering(5)
        self.assertEqual([], self.host.events(ev.MISSED))

    def test_burst_of_junk_is_rate_limited(self) -> None:
        with open(self.agent.log_path, 'rb') as log:
            log_offset = len(log.read())
        mark = self.host.mark()
        start = self.host.events()[mark - 1].t
        self.host.send(b''.join(b'junk line %d\n' % i for i in range(JUNK_LINES)))
        self.host.wait_for(ev.ERROR, since=mark, timeout=base.TIMEOUT)
        self.assert_answering(10)
        errors = self.host.events(ev.ERROR, since=mark)
        elapsed = errors[-1].t - start
        allowed = ERROR_REPLY_BURST + ERROR_REPLY_RATE * elapsed + 2
        self.assertGreater(len(errors), 0)
        self.assertLessEqual(len(errors), allowed, 'error replies are not rate-limited')
        self.assertEqual({'invalid_json'}, {e.data['code'] for e in errors})
        status = json.loads(self.run_client(self.agent, 'status', '--json').stdout)
        self.assertGreaterEqual(status['counters']['protocol_errors'], JUNK_LINES)
        with open(self.agent.log_path, 'rb') as log:
            new_log = log.read()[log_offset:].decode('utf-8', 'replace')
        lines = [line for line in new_log.splitlines() if PROTOCOL_ERROR_LOG.search(line)]
        self.assertGreaterEqual(len(lines), 1, 'the first protocol error is not logged:\n%s' % new_log)
        self.assertLessEqual(len(lines), 3, 'protocol errors are not rate-limited in the log:\n%s' % new_log)

    def test_junk_does_not_disturb_a_later_session(self) -> None:
        # Half a frame left by one host connection must not corrupt the next one's first frame.
        self.host.send(b'{"v": 1, "app": "heartbeat", "type": "chall')
        self.host.disconnect()
        host = ScriptedHost('second', log=self.host.log)
        self.addCleanup(host.close)
        mark = host.mark()
        host.connect(self.host_sock, timeout=base.TIMEOUT)
        host.wait_for(ev.REGISTERED, since=mark, timeout=base.TIMEOUT)
        host.wait_for(ev.HEALTHY, since=mark, timeout=base.TIMEOUT)
        status = json.loads(self.run_client(self.agent, 'status', '--json').stdout)
        self.assertEqual(0, status['counters']['protocol_errors'])
        self.assertEqual(host.session, status['session'])
