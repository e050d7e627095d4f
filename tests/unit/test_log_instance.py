"""Every host log line about one instance carries it the oslo.log way: ``[instance: <uuid>] ``.

oslo.log's ContextFormatter turns a record's ``instance_uuid`` (``extra=`` of a
stdlib logger, a keyword of oslo.log's adapter) into ``[DEFAULT]
instance_uuid_format``, so one grep for a uuid follows an instance through
ha-guest-compute and ha-guest-controller as it does through Nova.
"""

from __future__ import annotations

import ast
import io
import logging
import os
import re
from typing import Iterator, List, Tuple

import testtools
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_log import formatters
from oslo_log import log as oslo_logging

from ha_guest.compute.log_gate import KeyedLogGates, LogGate
from ha_guest.compute.log_text import GuestLogs

ROOT = os.path.join(os.path.dirname(__file__), '..', '..', 'ha_guest')
#: The host rooms whose lines an operator greps.
PACKAGES = ('compute', 'controller', 'sinks')
LEVELS = {'debug', 'info', 'warning', 'error', 'exception', 'critical', 'log'}
#: Log receivers: the module logger and the rate-limiting gates in front of it.
RECEIVERS = {'LOG', '_log', '_logs', '_gate', '_warnings', '_bad_file_log'}
#: Gates made for one instance (LogGate(..., instance_uuid=...)): their lines carry it already.
BOUND_GATES = {('channel.py', '_log'), ('channel_writer.py', '_log'), ('connection.py', '_log')}
#: Names whose value is one instance's uuid.
INSTANCE_NAME = re.compile(r'(^|_)uuid$|^sender$|^member$')
INSTANCE_KEYS = {'instance_uuid', 'sender', 'member'}
MARKS = {'instance_uuid', 'instance', 'extra'}
#: A comment on a line about several instances (a batch, a storm): no one uuid to carry.
SEVERAL = '# log: several instances'
UUID = '2b6f8d5e-0c1a-4d7e-9f3b-5a1c2e3d4f60'


def _names_instance(node: ast.AST) -> bool:
    for item in ast.walk(node):
        if isinstance(item, ast.Name) and INSTANCE_NAME.search(item.id):
            return True
        if isinstance(item, ast.Attribute) and INSTANCE_NAME.search(item.attr):
            return True
        if isinstance(item, ast.Constant) and item.value in INSTANCE_KEYS:
            return True  # fault['instance_uuid'], payload.get('instance_uuid')
        if isinstance(item, ast.Constant) and isinstance(item.value, str) and '%(instance_uuid)s' in item.value:
            return True
    return False


def _log_calls() -> Iterator[Tuple[str, int, ast.Call, List[str]]]:
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in sorted(files):
                if not name.endswith('.py'):
                    continue
                path = os.path.join(folder, name)
                with open(path, encoding='utf-8') as handle:
                    source = handle.read()
                lines = source.splitlines()
                for node in ast.walk(ast.parse(source)):
                    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                            and node.func.attr in LEVELS):
                        continue
                    receiver = node.func.value
                    label = receiver.id if isinstance(receiver, ast.Name) else (
                        receiver.attr if isinstance(receiver, ast.Attribute) else None)
                    if label not in RECEIVERS or (name, label) in BOUND_GATES:
                        continue
                    yield path, node.lineno, node, lines


class TestPerInstanceLogCalls(testtools.TestCase):
    """A source check: a LOG call that names one instance passes it for the [instance: ] prefix."""

    def test_calls_about_one_instance_pass_it(self) -> None:
        missing, checked = [], 0
        for path, lineno, call, lines in _log_calls():
            if not any(_names_instance(arg) for arg in call.args):
                continue
            checked += 1
            if {k.arg for k in call.keywords} & MARKS:
                continue
            around = '\n'.join(lines[max(0, lineno - 2):(call.end_lineno or lineno)])
            if SEVERAL in around:
                continue
            missing.append('%s:%d: %s' % (os.path.relpath(path, ROOT), lineno, lines[lineno - 1].strip()))
        self.assertGreater(checked, 20)  # the check found the calls it is about
        self.assertEqual([], missing, 'LOG calls about one instance without instance_uuid= (or extra=): pass '
                         'it, or mark a line about several instances with %r' % SEVERAL)


class TestInstancePrefix(testtools.TestCase):
    """What oslo.log's formatter makes of those lines, through our gates and a stdlib logger."""

    def setUp(self) -> None:
        super().setUp()
        conf = self.useFixture(config_fixture.Config(cfg.ConfigOpts())).conf
        oslo_logging.register_options(conf)
        self.stream = io.StringIO()
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(formatters.ContextFormatter(config=conf))
        self.logger = logging.getLogger('ha_guest.tests.instance_prefix')
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(handler)
        self.addCleanup(self.logger.removeHandler, handler)

    def lines(self) -> List[str]:
        return self.stream.getvalue().splitlines()

    def test_stdlib_logger_with_extra(self) -> None:
        self.logger.info('channel found', extra={'instance_uuid': UUID})
        self.logger.info('compute agent started')
        self.assertIn('[instance: %s] channel found' % UUID, self.lines()[0])
        self.assertNotIn('[instance:', self.lines()[1])

    def test_oslo_adapter_keyword(self) -> None:
        adapter = oslo_logging.KeywordArgumentAdapter(self.logger, {})
        adapter.warning('Heartbeat fault raised', instance_uuid=UUID)
        self.assertIn('[instance: %s] Heartbeat fault raised' % UUID, self.lines()[0])

    def test_gates_and_guest_logs(self) -> None:
        clock = iter(float(t) for t in range(100)).__next__
        LogGate(self.logger, clock, instance_uuid=UUID).log(logging.INFO, 'channel closed')
        LogGate(self.logger, clock).log(logging.INFO, 'dropped for', instance_uuid=UUID)
        KeyedLogGates(self.logger, clock).log('reason', logging.INFO, 'broadcast dropped', instance_uuid=UUID)
        logs = GuestLogs(self.logger, clock)
        logs.line(UUID, 'exit', logging.INFO, 'guest ended monitoring')
        logs.incident(UUID, logging.WARNING, 'FAULT missed')
        LogGate(self.logger, clock).log(logging.INFO, 'a host line')
        # The controller's gates sit in front of oslo.log's adapter.
        adapter = oslo_logging.KeywordArgumentAdapter(self.logger, {})
        KeyedLogGates(adapter, clock).log('sync', logging.INFO, 'a controller line')  # type: ignore[arg-type]
        KeyedLogGates(adapter, clock).log('x', logging.INFO, 'broadcast refused', instance_uuid=UUID)  # type: ignore[arg-type]
        lines = self.lines()
        self.assertEqual(8, len(lines))
        for line in lines[:5] + lines[7:]:
            self.assertIn('[instance: %s] ' % UUID, line)
        self.assertNotIn('[instance:', lines[5])
        self.assertNotIn('[instance:', lines[6])
