"""The interface between channel discovery drivers and the compute agent.

A driver learns which instances on this host have an ha_guest channel, where
the host end of that channel (QEMU's socket) is, and whether each instance
can run right now. It tells a listener; the compute agent is that listener.

Contract (drivers and the listener both rely on it):

* ``start()`` reports every channel that already exists (``channel_added``)
  before or shortly after it returns, then follows changes until ``stop()``.
* Listener methods may be called from any thread, in the order the driver
  observed the changes; the listener is thread-safe and never blocks (the
  compute agent hands each call to its event loop).
* ``channel_added`` for an instance that is already known is an update (for
  example a new socket path after a restart of the domain, or other
  ``features`` after a resize to another flavor); ``suspended``
  says whether the instance cannot run at the moment it is added (a paused
  domain, an incoming migration), so no miss is counted in between.
* ``instance_suspended`` / ``instance_resumed``: the domain is paused,
  suspended, migrating or shutting down, and runs again. Neither is a fault;
  misses are not counted in between.
* ``channel_removed``: the domain stopped, was undefined or migrated away;
  monitoring ends without a fault. Unknown instances are ignored.
* Drivers never raise from listener calls and keep running after errors of
  their own source (log, retry): a discovery hiccup must not stop heartbeats.
* ``event_latency_s``: the longest a driver normally takes to report a
  change (a domain stopped: ``channel_removed``). The compute agent waits
  that long (plus a margin) after a channel socket drops before it counts
  misses again, so a stopping domain is never a fault.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Protocol

from oslo_config import cfg

# Why a driver says an instance is suspended (free text, for logs and state reports).
PAUSED = "paused"
MIGRATING = "migrating"
SHUTTING_DOWN = "shutting_down"
SUSPENDED = "suspended"


@dataclasses.dataclass(frozen=True)
class Features:
    """What an instance's flavor (or image) enabled on its channel."""

    heartbeat: bool = True
    server_group_messaging: bool = False


#: A channel that says nothing about its features (a domain defined before
#: ha_guest wrote them): heartbeat only, as every channel meant before.
LEGACY_FEATURES = Features()


class DiscoveryListener(Protocol):
    """What a discovery driver tells the compute agent; callable from any thread."""

    def channel_added(self, instance_uuid: str, socket_path: str, suspended: bool = False,
                      features: Features = LEGACY_FEATURES) -> None:
        """An instance has a channel whose host socket is ``socket_path``, with these ``features``."""

    def channel_removed(self, instance_uuid: str) -> None:
        """The instance's channel is gone for good (domain stopped or left the host)."""

    def instance_suspended(self, instance_uuid: str, reason: str) -> None:
        """The instance cannot run for now (``reason``: paused, migrating, ...)."""

    def instance_resumed(self, instance_uuid: str) -> None:
        """The instance runs again."""


class DiscoveryDriver(abc.ABC):
    """Base of the drivers behind the ``ha_guest.compute.discovery`` namespace.

    Loaded by stevedore with ``invoke_args=(conf, listener)``; the driver
    reads its options from ``conf`` (group ``[compute]``).
    """

    #: What a driver that does not say takes to report a change, in seconds (the former fixed grace).
    DEFAULT_EVENT_LATENCY_S = 0.4

    def __init__(self, conf: cfg.ConfigOpts, listener: DiscoveryListener) -> None:
        self.conf = conf
        self.listener = listener

    @property
    def event_latency_s(self) -> float:
        """The longest this driver normally takes between a change of a domain and the listener call."""
        return self.DEFAULT_EVENT_LATENCY_S

    @abc.abstractmethod
    def start(self) -> None:
        """Report the existing channels, then follow changes (in a thread of its own)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop following changes and release resources; safe to call twice."""
