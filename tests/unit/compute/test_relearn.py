"""Re-learning a lost state file's incidents gives up at once on controllers that cannot answer by host."""

from __future__ import annotations

from typing import Any, List, Optional

import oslo_messaging
import testtools

from ha_guest.compute.relearn import relearn


class _Api:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    def list_faults(self, ctxt: Any, host: Optional[str] = None) -> List[Any]:
        self.calls += 1
        raise self.exc


class TestRelearnOlderControllers(testtools.TestCase):

    def _check_gives_up(self, exc: Exception) -> None:
        delivered: List[Any] = []
        api = _Api(exc)
        asking = relearn(api, 'cmp-1', delivered.append, wait_s=2.0)
        self.assertIsNotNone(asking)
        assert asking is not None
        self.addCleanup(asking.stop)
        # None: "the controllers cannot say", so state reports go out again (no retry loop).
        self.assertTrue(asking.done.is_set())
        self.assertEqual([None], delivered)
        self.assertEqual(1, api.calls)

    def test_version_cap_below_1_2(self) -> None:
        # [rpc] controller_version_cap = 1.1 during a rolling upgrade: oslo.messaging refuses locally.
        self._check_gives_up(oslo_messaging.RPCVersionCapError(version='1.2', version_cap='1.1'))

    def test_controller_older_than_1_2(self) -> None:
        self._check_gives_up(oslo_messaging.UnsupportedVersion('1.2', method='list_faults'))
