"""What the controllers tell ha-guest-status: agents by state (list_agents), recently cleared faults."""

from __future__ import annotations

from typing import Any

from ha_guest.controller import registry as registry_mod
from ha_guest.controller import status_view
from ha_guest.controller.agent_watch import MAX_STATES, AgentTable
from ha_guest.controller.endpoint import ControllerEndpoint
from ha_guest.controller.registry import FaultRegistry
from ha_guest.rpc.controller_api import CONTROLLER_API_VERSION
from tests.unit.controller.test_registry import fault
from tests.unit.controller.test_watchers import DOWN, WatchersTestCase


def state_report(host: str, at: float, states: list[str], rpc_api: str | None = '1.2') -> dict[str, Any]:
    agent: dict[str, Any] = {'version': '9.9.9', 'started_at': at - 100, 'report_interval_s': 1.0}
    if rpc_api is not None:
        agent['rpc_api'] = rpc_api
    return {'host': host, 'at': at, 'agent': agent,
            'instances': [{'instance_uuid': 'i-%d' % n, 'state': state, 'interval_ms': 100, 'registered': True}
                          for n, state in enumerate(states)]}


class TestAgentTable(WatchersTestCase):

    def test_counts_states_and_keeps_the_api_version(self) -> None:
        table = AgentTable()
        table.observe(state_report('cmp1', 10.0, ['healthy', 'healthy', 'failed']), 11.0)
        record = table.get('cmp1')
        assert record is not None
        self.assertEqual(({'healthy': 2, 'failed': 1}, '1.2', '9.9.9'), (record.states, record.rpc_api,
                                                                          record.version))

    def test_counts_are_bounded(self) -> None:
        table = AgentTable()
        table.observe(state_report('cmp1', 10.0, ['s%d' % n for n in range(MAX_STATES + 5)] + ['s0']), 11.0)
        record = table.get('cmp1')
        assert record is not None
        self.assertEqual(MAX_STATES, len(record.states))
        self.assertEqual(2, record.states['s0'])

    def test_peers_pass_it_on_and_an_older_peer_passes_none(self) -> None:
        first, second = AgentTable(), AgentTable()
        first.observe(state_report('cmp1', 10.0, ['healthy']), 11.0)
        second.merge(first.take_delta())
        record = second.get('cmp1')
        assert record is not None
        self.assertEqual(({'healthy': 1}, '1.2'), (record.states, record.rpc_api))
        old_entry = {'host': 'cmp2', 'seen_at': 12.0, 'report_at': 12.0, 'interval_s': 1.0, 'version': '1',
                     'unregistered': {}, 'left': {}}
        second.merge([old_entry])
        old = second.get('cmp2')
        assert old is not None
        self.assertEqual(({}, None), (old.states, old.rpc_api))


class TestListAgents(WatchersTestCase):

    def test_alive_then_silent(self) -> None:
        watch, _ = self.controller('ctl-1')
        watch.report_state(state_report('cmp1', self.clock.now, ['healthy', 'unhealthy']))
        watch.report_state(state_report('cmp0', self.clock.now, [], rpc_api=None))
        [old, agent] = status_view.list_agents(watch)
        self.assertEqual(('cmp0', None), (old['host'], old['rpc_api']))
        self.assertEqual(('cmp1', 'alive', {'healthy': 1, 'unhealthy': 1}, '1.2', '9.9.9', None),
                         (agent['host'], agent['status'], agent['instances'], agent['rpc_api'], agent['version'],
                          agent['host_fault']))
        self.assertEqual(self.clock.now, agent['last_report_at'])
        self.run_for(DOWN + 3, [watch])  # no reports: the agents fall silent, the leader opens host faults
        agents = {a['host']: a for a in status_view.list_agents(watch)}
        self.assertEqual('silent', agents['cmp1']['status'])
        self.assertIsNotNone(agents['cmp1']['host_fault'])
        self.assertEqual(['cmp1'], [a['host'] for a in status_view.list_agents(watch, 'cmp1')])

    def test_endpoint_says_who_answers(self) -> None:
        watch, _ = self.controller('ctl-1')
        endpoint = ControllerEndpoint(handler=Handler(), watch=watch)  # type: ignore[arg-type]
        answer = endpoint.list_agents({}, None)
        self.assertEqual(('ctl-1', CONTROLLER_API_VERSION), (answer['controller']['host'],
                                                             answer['controller']['rpc_api']))
        self.assertEqual([], answer['agents'])


class Handler:
    """The part of FaultHandler the listings use."""

    def __init__(self) -> None:
        self.registry = FaultRegistry(max_faults=10)


class TestClearedFaults(WatchersTestCase):

    def test_cleared_faults_are_listed_with_how_they_ended(self) -> None:
        handler = Handler()
        registry = handler.registry
        registry.add(fault('i-1', 'inc-1', host='cmp1'))
        registry.add(fault('i-2', 'inc-2', host='cmp2'))
        registry.clear('i-1', 'inc-1', 200.0, registry_mod.CLEARED_BY_RECOVERED)
        registry.clear_instance('i-2', 300.0, registry_mod.CLEARED_BY_EXITED)
        registry.clear('i-9', 'never', 300.0, registry_mod.CLEARED_BY_RECOVERED)  # unknown: not listed
        endpoint = ControllerEndpoint(handler=handler)  # type: ignore[arg-type]
        listed = endpoint.list_cleared_faults({})
        self.assertEqual([('i-1', 200.0, 'recovered', 'cleared'), ('i-2', 300.0, 'exited', 'cleared')],
                         [(f['instance_uuid'], f['cleared_at'], f['cleared_by'], f['state']) for f in listed])
        self.assertEqual(['i-2'], [f['instance_uuid'] for f in endpoint.list_cleared_faults({}, host='cmp2')])
        self.assertEqual(['i-1'], [f['instance_uuid'] for f in endpoint.list_cleared_faults({}, 'i-1')])
        self.assertEqual([], registry.list())

    def test_the_memory_is_bounded(self) -> None:
        registry = FaultRegistry(max_faults=registry_mod.RECENT_CLEARED + 10)
        for n in range(registry_mod.RECENT_CLEARED + 5):
            registry.add(fault('i-%d' % n, 'inc'))
            registry.clear('i-%d' % n, 'inc', 200.0 + n, registry_mod.CLEARED_BY_RECOVERED)
        cleared = registry.list_cleared()
        self.assertEqual(registry_mod.RECENT_CLEARED, len(cleared))
        self.assertEqual('i-5', cleared[0]['instance_uuid'])
