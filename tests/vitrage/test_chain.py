"""The whole chain into Vitrage on a real RabbitMQ: a hung guest becomes an alarm on its instance.

A real guest agent process on an emulated channel, real ha-guest-compute and
ha-guest-controller processes (vitrage sink) on the broker, and in this
process vitrage-graph's own notification listener, processor and evaluator
with ha_guest's template (ha_guest.vitrage.embedded). The instance enters the
graph from a Nova versioned notification through Vitrage's own nova.instance
datasource, as in a cloud.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import Any, Callable

from ha_guest.demo.guests import Guests
from ha_guest.testing.bench_procs import Service
from ha_guest.testing.messaging import check_broker, service_config, transport_url
from ha_guest.vitrage.embedded import EmbeddedVitrage, InstanceView
from tests.vitrage import base

TIMEOUT = 15.0
RABBIT = {'oslo_messaging_rabbit': {'amqp_auto_delete': 'true', 'heartbeat_timeout_threshold': '0'}}


class TestChainIntoVitrage(base.VitrageTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.url = transport_url()
        try:
            check_broker(self.url)
        except ConnectionError as exc:
            self.fail(str(exc))  # never a skip: the chain needs the broker
        suffix = uuid.uuid4().hex[:8]
        self.topic = 'vitrage_notifications_' + suffix
        # Vitrage sets its database engine up once per process: the file every test of this process uses.
        database = {'database': {'connection': 'sqlite:///' + os.path.join(base._PROCESS_DIR, 'vitrage.db')}}
        self.vitrage = EmbeddedVitrage(os.path.join(self.tmp, 'vitrage'), self.url, [self.topic],
                                       sections=dict(RABBIT, **database))
        self.vitrage.configure()
        self.vitrage.start()
        self.addCleanup(self.vitrage.stop)
        self.guests = Guests(os.path.join(self.tmp, 'g'), interval_ms=100)
        os.makedirs(self.guests.tmp)
        self.guests.start()
        self.addCleanup(self.guests.stop)
        self.groups: dict[str, dict[str, Any]] = {
            'rpc': {'controller_topic': 'chain_controller_' + suffix,
                    'controller_sync_topic': 'chain_controller_sync_' + suffix,
                    'compute_topic': 'chain_compute_' + suffix},
            'controller': {'fault_sinks': 'log,vitrage',
                           'announce_journal': os.path.join(self.tmp, 'controller-announced.jsonl')},
            'sink_vitrage': {'topics': self.topic},
        }

    def start_service(self, name: str, module: str, host: str, **groups: dict[str, Any]) -> Service:
        config = service_config(os.path.join(self.tmp, '%s.conf' % name), self.url, host, dict(self.groups, **groups))
        service = Service(name, module, config, os.path.join(self.tmp, '%s.log' % name))
        self.addCleanup(lambda: self.addDetail('%s-log' % name, _text(service.tail(200))))
        self.addCleanup(service.stop)
        return service

    def wait_view(self, instance: str, check: Callable[[InstanceView], bool], what: str) -> InstanceView:
        view = self.vitrage.wait_for(lambda: (v := self.vitrage.view(instance)) is not None and check(v) and v,
                                     TIMEOUT)
        if not view:
            self.fail('Vitrage did not show %s within %.0f s; it shows %s' % (what, TIMEOUT,
                                                                             self.vitrage.view(instance)))
        return view

    def test_hung_guest_is_an_alarm_on_its_instance(self) -> None:
        instance = str(uuid.uuid4())
        self.vitrage.watch(instance)
        self.vitrage.nova_instance_created(instance, 'chain-compute-1', 'vm-1')
        self.wait_view(instance, lambda v: v.state == 'ACTIVE', 'the instance')

        self.start_service('controller', 'ha_guest.cmd.controller', 'chain-controller')
        self.start_service('compute', 'ha_guest.cmd.compute', 'chain-compute-1', compute={
            'discovery_driver': 'directory', 'directory_path': self.guests.channel_dir,
            'state_file': os.path.join(self.tmp, 'compute-state.json')})
        guest = self.guests.add('vm-1', instance)
        deadline = time.monotonic() + TIMEOUT
        while 'registered: interval' not in _read(guest.log_path):
            self.assertLess(time.monotonic(), deadline, 'the guest agent did not register:\n%s'
                            % _read(guest.log_path))
            time.sleep(0.05)

        self.guests.signal('vm-1', signal.SIGSTOP)
        view = self.wait_view(instance, lambda v: bool(v.alarms_of('ha_guest')) and v.state == 'ERROR'
                              and v.marked_down and bool(v.alarms_of('vitrage')), 'the alarm')
        (alarm,) = view.alarms_of('ha_guest')
        self.assertEqual(('Guest heartbeat missed', 'CRITICAL'), (alarm.name, alarm.severity))
        (deduced,) = view.alarms_of('vitrage')
        self.assertEqual(('Instance unavailable', 'CRITICAL'), (deduced.name, deduced.severity))

        self.guests.signal('vm-1', signal.SIGCONT)
        self.wait_view(instance, lambda v: not v.alarms and v.state == 'ACTIVE' and not v.marked_down,
                       'the alarm cleared')


def _read(path: str) -> str:
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read()
    except OSError:
        return ''


def _text(text: str) -> Any:
    from testtools import content

    return content.text_content(text)
