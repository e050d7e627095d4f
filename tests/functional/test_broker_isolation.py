"""Our exchange and the tests' vhost keep us apart from a cloud's exchanges on a shared RabbitMQ.

A development cloud's services declare "openstack" with oslo.messaging's default
options (not auto-delete). Our tests declare their exchanges auto-delete, which a
broker refuses for an exchange someone declared otherwise: PRECONDITION_FAILED.
The services use an exchange of their own ([DEFAULT] control_exchange =
ha_guest) and the tests their own vhost, so neither meets "openstack".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.parse
import uuid

import amqp.exceptions
import kombu
import oslo_messaging
from testtools import matchers

from ha_guest.testing import messaging, wait_for
from tests.functional.base import FunctionalTestCase
from tests.functional.controller.test_controller import make_fault
from tests.functional.rabbit import TIMEOUT, ControllerProcess, RabbitFixture
from tests.messaging import NotificationCollector


def _rabbitmqctl(*args: str) -> str:
    ctl = shutil.which('rabbitmqctl')
    if ctl is None or os.geteuid() != 0:
        raise AssertionError('this test makes a vhost of its own: it needs rabbitmqctl and root '
                             '(tools/ensure-rabbitmq.sh)')
    return subprocess.run([ctl, '-q', *args], check=True, capture_output=True, text=True, timeout=60).stdout


class TestBrokerIsolation(FunctionalTestCase):

    def setUp(self) -> None:
        super().setUp()
        # A vhost of this test's own, where it plays the cloud that declared "openstack" first.
        self.vhost = 'ha_guest_iso_%s' % uuid.uuid4().hex[:8]
        _rabbitmqctl('add_vhost', self.vhost)
        self.addCleanup(_rabbitmqctl, 'delete_vhost', self.vhost)
        _rabbitmqctl('set_permissions', '-p', self.vhost, 'guest', '.*', '.*', '.*')
        base = urllib.parse.urlsplit(messaging.transport_url())
        self.url = urllib.parse.urlunsplit((base.scheme, base.netloc, '/' + self.vhost, '', ''))
        self.amqp = kombu.Connection(self.url.replace('rabbit://', 'amqp://', 1))
        self.addCleanup(self.amqp.release)

    def exchanges(self) -> dict[str, str]:
        """Return {name: auto_delete} of this vhost's exchanges."""
        listing = _rabbitmqctl('list_exchanges', '-p', self.vhost, 'name', 'auto_delete')
        return dict(line.split('\t') for line in listing.splitlines()[1:] if '\t' in line)

    def test_default_vhost_is_the_tests_own(self) -> None:
        self.assertEqual('/' + messaging.TEST_VHOST, urllib.parse.urlsplit(messaging.DEFAULT_RABBIT_URL).path)

    def test_services_and_fixtures_work_beside_a_default_openstack_exchange(self) -> None:
        # Another OpenStack service was here first, with oslo.messaging's default options.
        channel = self.amqp.channel()
        kombu.Exchange('openstack', type='topic', durable=False, auto_delete=False)(channel).declare()
        # What our tests used to do on it fails (the PRECONDITION_FAILED)...
        ours_before = kombu.Exchange('openstack', type='topic', durable=False,
                                     auto_delete=messaging.RABBIT_OPTIONS['amqp_auto_delete'])
        self.assertRaises(amqp.exceptions.PreconditionFailed, ours_before(self.amqp.channel()).declare)

        # ...while a real controller with our test options, its clients and its sinks work.
        rabbit = self.useFixture(RabbitFixture(self.url))
        self.assertEqual('ha_guest', rabbit.conf.control_exchange)
        # A consumer like Vitrage's: its own exchange ("vitrage"), no pool, our sink's topic.
        vitrage = NotificationCollector()
        targets = [oslo_messaging.Target(topic=topic, exchange='vitrage') for topic in rabbit.conf.sink_vitrage.topics]
        listener = oslo_messaging.get_notification_listener(rabbit.notification_transport, targets, [vitrage])
        listener.start()
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        controller = self.useFixture(ControllerProcess(rabbit, 'iso-ctl', self.tmp))
        fault = make_fault()
        self.assertEqual({'duplicate': False}, controller.api.report_fault(None, fault))
        self.assertEqual([fault['instance_uuid']], [f['instance_uuid'] for f in controller.api.list_faults(None)])
        # The notification went out on "ha_guest" and still reached the "vitrage" consumer: a notifier
        # declares the queue named after the topic and binds it to its own exchange too.
        raised = vitrage.get(TIMEOUT)
        self.assertEqual(('ha_guest.heartbeat.fault.raised', fault['incident_id']),
                         (raised['event_type'], raised['payload']['incident_id']))

        exchanges = wait_for(lambda: (lambda found: found if 'ha_guest' in found else None)(self.exchanges()),
                             TIMEOUT, message='the ha_guest exchange')
        self.assertEqual('false', exchanges['openstack'])  # untouched
        self.assertEqual('true', exchanges['ha_guest'])  # ours, with the tests' options
        self.assertThat(exchanges, matchers.Not(matchers.Contains('nova')))
        self.assertEqual(0, controller.stop())
