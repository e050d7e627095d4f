"""Prometheus metrics scraped over HTTP from real ha-guest-compute and ha-guest-controller processes.

Real guest agents on emulated channels, a real RabbitMQ: a guest that hangs
(SIGSTOP) moves the compute agent's misses, faults and guests by state and
the controller's open and raised faults; its recovery (SIGCONT) moves them
back and counts the recovery on both sides.
"""

from __future__ import annotations

import os
import signal
import socket
import urllib.error
import urllib.request

from ha_guest.testing import wait_for
from tests.functional.chain import COMPUTE_HOST, COMPUTE_MODULE, RAISED, ChainTestCase
from tests.functional.rabbit import TIMEOUT, ControllerProcess, ServiceProcess
from tests.unit.metrics.scrape import Samples, parse, value

C, R = "ha_guest_compute_", "ha_guest_controller_"


def free_port() -> int:
    """A TCP port nobody listens on now (the service binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TestMetricsScrape(ChainTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.controller_port, self.compute_port = free_port(), free_port()
        self.controller = self.useFixture(ControllerProcess(
            self.rabbit, 'metrics-controller', self.tmp, controller={'fault_sinks': 'log,notifications'},
            metrics={'listen_port': self.controller_port}))

    def start_compute_with_metrics(self) -> ServiceProcess:
        config = self.rabbit.service_config(os.path.join(self.tmp, 'compute.conf'), COMPUTE_HOST, compute={
            'discovery_driver': 'directory', 'directory_path': self.host_dir, 'directory_poll_s': 0.1,
            'state_file': os.path.join(self.tmp, 'compute-state.json')}, metrics={'listen_port': self.compute_port})
        return self.useFixture(ServiceProcess('compute-metrics', ['-m', COMPUTE_MODULE, '--config-file', config],
                                              self.tmp))

    def scrape(self, port: int, service: ServiceProcess) -> Samples:
        """GET /metrics; fails with the service's log if it died."""
        if not service.alive():
            raise AssertionError('%s exited:\n%s' % (service.name, service.log()))
        with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=5) as response:
            self.assertEqual(200, response.status)
            return parse(response.read().decode('utf-8'))

    def wait_scrape(self, port: int, service: ServiceProcess, check: object, what: str) -> Samples:
        """Scrape until ``check(samples)`` holds; returns those samples."""
        found: dict = {}

        def ready() -> bool:
            try:
                samples = self.scrape(port, service)
            except (urllib.error.URLError, ConnectionError):
                return False  # not listening yet
            found['samples'] = samples
            return bool(check(samples))  # type: ignore[operator]

        wait_for(ready, TIMEOUT, message=what)
        return found['samples']

    def test_hang_and_recovery_move_the_scraped_values(self) -> None:
        instance, agent = self.add_guest()
        _, other = self.add_guest()
        compute = self.start_compute_with_metrics()
        self.wait_agent_registered(agent)
        self.wait_agent_registered(other)
        scrape_compute = lambda check, what: self.wait_scrape(self.compute_port, compute, check, what)  # noqa: E731
        scrape_controller = lambda check, what: self.wait_scrape(  # noqa: E731
            self.controller_port, self.controller, check, what)

        before = scrape_compute(lambda s: value(s, C + 'guests', state='healthy') == 2
                                and value(s, C + 'answers_total', health='healthy') >= 10, 'two guests answering')
        self.assertEqual(0, value(before, C + 'guests', state='failed'))
        self.assertEqual(2, value(before, C + 'channels_connected'))
        self.assertGreater(value(before, C + 'answer_latency_seconds_count'), 0)
        self.assertEqual(0, value(before, C + 'faults_total', kind='missed'))
        self.assertEqual(0, value(scrape_controller(lambda s: True, 'the controller'), R + 'open_faults',
                                  kind='missed'))

        agent.signal(signal.SIGSTOP)
        self.notification(RAISED, instance)
        hung = scrape_compute(lambda s: value(s, C + 'guests', state='failed') == 1, 'a failed guest')
        self.assertEqual(1, value(hung, C + 'guests', state='healthy'))
        self.assertEqual(1, value(hung, C + 'faults_total', kind='missed'))
        self.assertGreater(value(hung, C + 'misses_total'), value(before, C + 'misses_total'))
        controller = scrape_controller(lambda s: value(s, R + 'open_faults', kind='missed') == 1, 'an open fault')
        self.assertEqual(1, value(controller, R + 'faults_raised_total', kind='missed'))
        self.assertEqual(0, value(controller, R + 'faults_cleared_total', kind='missed'))
        self.assertEqual(0, value(controller, R + 'sink_failures_total', sink='notifications'))

        agent.signal(signal.SIGCONT)
        healed = scrape_compute(lambda s: value(s, C + 'recoveries_total', kind='missed') == 1, 'a recovery')
        self.assertEqual(2, value(healed, C + 'guests', state='healthy'))
        hung_challenges = value(hung, C + 'challenges_total')
        scrape_compute(lambda s: value(s, C + 'challenges_total') > hung_challenges + 10, 'challenges going on')
        controller = scrape_controller(lambda s: value(s, R + 'faults_cleared_total', kind='missed') == 1,
                                       'the fault cleared at the controller')
        self.assertEqual(0, value(controller, R + 'open_faults', kind='missed'))
        # The recovery went out and was acknowledged: the fault and its recovery at least, each call timed.
        sent = scrape_compute(lambda s: value(s, C + 'reports_sent_total') >= 2, 'two reports acknowledged')
        self.assertGreaterEqual(value(sent, C + 'report_latency_seconds_count'), 2)

    def test_no_endpoint_without_a_port(self) -> None:
        self.add_guest()
        compute = self.start_compute()  # chain.py's: no [metrics] options
        self.wait_log(compute, 'compute agent started')
        self.assertNotIn('metrics served on', compute.log())
        self.assertIn('metrics served on http://127.0.0.1:%d/metrics' % self.controller_port, self.controller.log())
