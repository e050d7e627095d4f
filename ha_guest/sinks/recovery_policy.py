"""Which recovery an instance's flavor asks for (``ha_guest:recovery``), read from Nova and cached briefly."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

from ha_guest.nova import specs

#: Instances whose policy is remembered at most (oldest forgotten first).
MAX_CACHED = 10000


class PolicyUnknown(Exception):
    """Nova answered, but the instance's recovery policy cannot be read from its answer."""


def policy_of(server: Any) -> str:
    """Return the ``ha_guest:recovery`` action of an openstacksdk Server (embedded flavor, microversion >= 2.47)."""
    flavor = getattr(server, 'flavor', None)
    if flavor is None:
        raise PolicyUnknown('Nova returned the server without its flavor')
    # Nova leaves "extra_specs" out of the embedded flavor below microversion 2.47, and when its policy
    # os_compute_api:os-flavor-extra-specs:index denies our user; openstacksdk then shows {}. Its record of
    # what the body held is the only way to tell "no extra specs" from "not shown".
    shown = getattr(getattr(flavor, '_body', None), 'attributes', None)
    hidden = ('extra_specs' not in shown) if isinstance(shown, dict) else (flavor.original_name is None)
    if hidden:
        raise PolicyUnknown('Nova did not show the flavor\'s extra specs (compute API microversion below 2.47, or '
                            'a policy that hides flavor extra specs from the [nova_api] user)')
    try:
        return specs.recovery_action(flavor.extra_specs or {})
    except specs.InvalidSpec as exc:
        raise PolicyUnknown(str(exc)) from None


class PolicyLookup:
    """Looks an instance's policy up with ``fetch(instance_uuid)`` (a Server) and remembers it for ``ttl`` s.

    Only answers are remembered: an error or an unreadable policy is asked
    again next time. Thread-safe; two threads may look the same instance up
    at once (both ask Nova), which is harmless.
    """

    def __init__(self, fetch: Callable[[str], Any], ttl: float, max_cached: int = MAX_CACHED,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self.max_cached = max_cached
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[str, tuple[float, str]] = collections.OrderedDict()

    def cached(self, instance_uuid: str) -> Optional[str]:
        """Return the remembered policy of an instance, or None if unknown or expired."""
        now = self._clock()
        with self._lock:
            entry = self._cache.get(instance_uuid)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._cache[instance_uuid]
                return None
            return entry[1]

    def get(self, instance_uuid: str) -> tuple[str, bool]:
        """Return (policy, whether it came from the cache); Nova's errors and PolicyUnknown propagate."""
        policy = self.cached(instance_uuid)
        if policy is not None:
            return policy, True
        policy = policy_of(self._fetch(instance_uuid))
        if self.ttl > 0:
            with self._lock:
                self._cache[instance_uuid] = (self._clock() + self.ttl, policy)
                self._cache.move_to_end(instance_uuid)
                while len(self._cache) > self.max_cached:
                    self._cache.popitem(last=False)
        return policy, False
