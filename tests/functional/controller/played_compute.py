"""A compute agent's RPC side played by the test: its open incidents, its state reports, its answer to
request_state_report (fanout or its host's own), the way a newer agent sends them (announced, detected_at)."""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

import fixtures
import oslo_messaging

from ha_guest import rpc
from ha_guest.rpc import transport as rpc_transport
from tests.functional.rabbit import RabbitFixture


class _Endpoint:
    target = oslo_messaging.Target(version=rpc.COMPUTE_API_VERSION)

    def __init__(self, compute: PlayedCompute) -> None:
        self._compute = compute

    def request_state_report(self, ctxt: dict[str, Any]) -> None:
        self._compute.requests += 1
        self._compute.send_state()


class PlayedCompute(fixtures.Fixture):
    """Holds a host's open incidents; sends state reports on request, or from a thread every ``period`` s."""

    def __init__(self, rabbit: RabbitFixture, host: str = 'cmp-1') -> None:
        super().__init__()
        self.rabbit = rabbit
        self.host = host
        self.requests = 0
        self.sent = 0
        self._lock = threading.Lock()
        self._open: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _setUp(self) -> None:
        self.api = self.rabbit.controller_api()  # the topic: state reports spread over the controllers
        server = rpc_transport.get_rpc_server(self.rabbit.transport,
                                              rpc.compute_server_target(self.rabbit.conf, self.host), [_Endpoint(self)])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)
        self.addCleanup(self.stop_reporting)

    def open(self, fault: dict[str, Any], announced: bool = False) -> None:
        """The host has ``fault`` open (not yet acknowledged unless ``announced``)."""
        with self._lock:
            self._open[fault['instance_uuid']] = dict(fault, announced=announced)

    def announce(self, fault: dict[str, Any]) -> None:
        """A controller acknowledged the fault report."""
        with self._lock:
            known = self._open.get(fault['instance_uuid'])
            if known is not None and known['incident_id'] == fault['incident_id']:
                known['announced'] = True

    def close(self, fault: dict[str, Any]) -> None:
        """The incident ended on the host (its recovery report is still to be sent)."""
        with self._lock:
            self._open.pop(fault['instance_uuid'], None)

    def state(self) -> dict[str, Any]:
        """The state report a newer agent would send now."""
        with self._lock:
            items = [{'instance_uuid': f['instance_uuid'], 'state': 'failed', 'interval_ms': 100,
                      'incident_id': f['incident_id'], 'fault_kind': f['kind'], 'reason': f['reason'],
                      'detected_at': f['detected_at'], 'announced': f['announced'], 'registered': True}
                     for f in self._open.values()]
        return {'host': self.host, 'at': time.time(), 'instances': items,
                'agent': {'version': 'played', 'started_at': 1.0, 'report_interval_s': 30.0}}

    def send_state(self) -> None:
        self.api.report_state(None, self.state())
        self.sent += 1

    def report_every(self, period: float) -> None:
        """Send state reports from a thread, every ``period`` seconds, until stop_reporting()."""
        def run() -> None:
            while not self._stop.wait(period):
                self.send_state()

        self._thread = threading.Thread(target=run, name='played-compute-%s' % self.host, daemon=True)
        self._thread.start()

    def stop_reporting(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
