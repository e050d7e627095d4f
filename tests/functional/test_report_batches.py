"""A compute agent's reporter on a real RabbitMQ and a real controller: a storm of faults goes in batches."""

from __future__ import annotations

from testtools import content

from ha_guest.testing import report_storm
from tests.functional.base import FunctionalTestCase
from tests.functional.rabbit import ControllerProcess, RabbitFixture

HOST = 'storm-compute-1'


class TestReportBatches(FunctionalTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.rabbit = self.useFixture(RabbitFixture())

    def start_controller(self) -> ControllerProcess:
        return self.useFixture(ControllerProcess(self.rabbit, 'storm-controller', self.tmp,
                                                 controller={'fault_sinks': 'log'}))

    def test_500_faults_at_once_reach_the_controller_in_a_few_calls(self) -> None:
        controller = self.start_controller()
        api = self.rabbit.controller_api()
        figures = report_storm.storm(api, 500, HOST)
        self.addDetail('figures', content.text_content('%s' % {k: v for k, v in figures.items() if k != 'incidents'}))
        self.assertEqual(500, figures['sent'])
        self.assertLessEqual(figures['batches'], 5)  # one call per report would be 500
        listed = controller.api.list_faults(None, host=HOST)
        self.assertEqual(sorted(figures['incidents']), sorted(f['incident_id'] for f in listed))
        self.assertEqual([], controller.api.list_faults(None, host='another-host'))

    def test_below_version_1_2_one_call_per_report(self) -> None:
        controller = self.start_controller()
        self.rabbit.conf.set_override('controller_version_cap', '1.1', group='rpc')
        api = self.rabbit.controller_api()
        figures = report_storm.storm(api, 20, HOST)
        self.assertEqual((0, 20), (figures['batches'], figures['sent']))
        self.assertEqual(20, len(controller.api.list_faults(None)))

