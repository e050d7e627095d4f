"""The upgrade checks: contradicting options, Nova's settings, the broker, version caps vs. running services."""

from __future__ import annotations

from typing import Any, Optional

import testtools
from oslo_upgradecheck.upgradecheck import Code

from ha_guest.rpc.compute_api import COMPUTE_API_VERSION
from ha_guest.rpc.controller_api import CONTROLLER_API_VERSION
from ha_guest.status import checks, nova_conf
from ha_guest.status.context import Status
from tests.messaging import ConfFixture


class FakeController:
    """A ControllerAPI stand-in: a version cap and one list_agents answer."""

    VERSION = CONTROLLER_API_VERSION

    def __init__(self, answer: dict[str, Any], cap: Optional[str] = None) -> None:
        self.answer = answer
        self.version_cap = cap or self.VERSION

    def can_send_version(self, version: str) -> bool:
        return checks.parse_version(version) <= checks.parse_version(self.version_cap)  # type: ignore[operator]

    def list_agents(self, ctxt: Any, host: Optional[str]) -> dict[str, Any]:
        return self.answer


class FakeStatus(Status):
    def __init__(self, conf: Any, controller: FakeController) -> None:
        super().__init__(conf, 1.0)
        self._controller = controller


def agent(host: str, rpc_api: Optional[str] = COMPUTE_API_VERSION, status: str = 'alive') -> dict[str, Any]:
    return {'host': host, 'rpc_api': rpc_api, 'status': status}


class ChecksTestCase(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(ConfFixture()).conf
        self.conf.set_override('agent_down_time_s', 75.0, group='controller')

    def texts(self) -> list[tuple[Code, str]]:
        return checks.contradictions(self.conf)


class TestContradictions(ChecksTestCase):

    def test_defaults_contradict_nothing(self) -> None:
        self.assertEqual([], self.texts())

    def test_each_contradiction(self) -> None:
        self.conf.set_override('min_interval_ms', 5000, group='compute')
        self.conf.set_override('max_interval_ms', 1000, group='compute')
        self.conf.set_override('reconnect_min_s', 3.0, group='compute')
        self.conf.set_override('flap_hold_down_s', 60.0, group='compute')
        self.conf.set_override('agent_down_time_s', 40.0, group='controller')
        self.conf.set_override('controller_version_cap', '1.0', group='rpc')
        self.conf.set_override('alarm_unregistered', True, group='controller')
        self.conf.set_override('controller_sync_version_cap', '1.1', group='rpc')
        self.conf.set_override('compute_version_cap', '2.0', group='rpc')
        found = self.texts()
        text = ' '.join(t for _, t in found)
        for part in ('min_interval_ms 5000 is above max_interval_ms 1000', 'reconnect_min_s 3 is above',
                     'flap_hold_down_s 60 is above', 'agent_down_time_s 40 is not above two',
                     'controller_version_cap 1.0 is below 1.1', 'controller_sync_version_cap 1.1 is below 1.2',
                     'compute_version_cap 2.0 is not a version this release knows'):
            self.assertIn(part, text)
        self.assertEqual(Code.FAILURE, max(code for code, _ in found))

    def test_a_late_report_risk_is_a_warning(self) -> None:
        self.conf.set_override('agent_down_time_s', 60.0, group='controller')
        self.assertEqual([Code.WARNING], [code for code, _ in self.texts()])

    def test_an_unparsable_cap_fails(self) -> None:
        self.conf.set_override('compute_version_cap', 'one', group='rpc')
        self.assertIn("compute_version_cap 'one' is not a version", self.texts()[0][1])


class TestNovaProblems(ChecksTestCase):

    def settings(self, text: str) -> nova_conf.NovaSettings:
        return nova_conf.NovaSettings(['nova.conf'], nova_conf.parse(text))

    def test_versioned_notifications_where_we_listen_pass(self) -> None:
        sgm = self.conf.sgm
        good = self.settings('[DEFAULT]\ncontrol_exchange = %s\n[notifications]\nnotification_format = versioned\n'
                             'versioned_notifications_topics = other,%s\n[oslo_messaging_notifications]\n'
                             'driver = messagingv2\n' % (sgm.notification_exchange, sgm.notification_topics[0]))
        self.assertEqual([], checks.nova_problems(good, sgm))

    def test_nova_defaults_fail_four_ways(self) -> None:
        found = checks.nova_problems(self.settings(''), self.conf.sgm)
        self.assertEqual([Code.FAILURE] * 4, [code for code, _ in found])
        self.assertIn("notification_format is 'unversioned'", found[0][1])
        self.assertIn('driver is unset (no notifications); add messagingv2', found[1][1])


class TestVersions(ChecksTestCase):

    def result(self, answer: dict[str, Any], cap: Optional[str] = None) -> tuple[Code, str]:
        upgrade = checks.UpgradeChecks(FakeStatus(self.conf, FakeController(answer, cap)))
        result = upgrade._check_rpc_versions()
        return result.code, result.details

    def test_current_services_pass(self) -> None:
        answer = {'controller': {'host': 'c1', 'rpc_api': CONTROLLER_API_VERSION}, 'agents': [agent('a')]}
        self.assertEqual(Code.SUCCESS, self.result(answer)[0])

    def test_older_agent_above_the_cap_warns(self) -> None:
        answer = {'controller': {'host': 'c1', 'rpc_api': CONTROLLER_API_VERSION},
                  'agents': [agent('a'), agent('old', None)]}
        code, details = self.result(answer)
        self.assertEqual(Code.WARNING, code)
        self.assertIn('compute_version_cap unset (%s) is above what compute agents speak (old 1.1)'
                      % COMPUTE_API_VERSION, details)
        self.conf.set_override('compute_version_cap', '1.1', group='rpc')
        self.assertEqual(Code.SUCCESS, self.result(answer)[0])

    def test_older_controller_and_silent_agent_warn(self) -> None:
        answer = {'controller': {'host': 'c1', 'rpc_api': '1.3'}, 'agents': [agent('a', status='silent')]}
        code, details = self.result(answer)
        self.assertEqual(Code.WARNING, code)
        self.assertIn('Controller c1 speaks controller API 1.3', details)
        self.assertIn('Silent compute agents (their versions may be stale): a.', details)

    def test_cap_below_the_listing_cannot_compare(self) -> None:
        code, details = self.result({}, cap='1.3')
        self.assertEqual(Code.WARNING, code)
        self.assertIn('controller_version_cap 1.3 is below 1.4', details)

    def test_unreachable_broker_fails_and_skips_the_versions(self) -> None:
        self.conf.set_override('transport_url', 'rabbit://guest:guest@127.0.0.1:1/')
        upgrade = checks.UpgradeChecks(FakeStatus(self.conf, FakeController({})))
        results = dict(upgrade.run())
        self.assertEqual(Code.FAILURE, results['Broker'].code)
        self.assertIn('127.0.0.1:1 unreachable', results['Broker'].details)
        self.assertEqual((Code.FAILURE, 'Not checked: the broker is unreachable.'),
                         (results['RPC versions'].code, results['RPC versions'].details))
