"""The "log" fault sink: one clear log line per raised and per cleared fault."""

from __future__ import annotations

from typing import Any

from oslo_log import log as logging

from ha_guest.sinks.base import FaultSink

LOG = logging.getLogger(__name__)


class LogSink(FaultSink):
    """Logs faults at WARNING and their end at INFO, one line each."""

    def fault_raised(self, fault: dict[str, Any]) -> None:
        LOG.warning('Heartbeat fault raised: instance %(instance_uuid)s on host %(host)s, %(kind)s: %(reason)s '
                    '(incident %(incident_id)s, interval %(interval_ms)s ms, misses %(misses)s)', fault,
                    instance_uuid=fault['instance_uuid'])

    def fault_cleared(self, fault: dict[str, Any], cleared: dict[str, Any]) -> None:
        LOG.info('Heartbeat fault cleared (%(cleared_by)s): instance %(instance_uuid)s on host %(host)s, '
                 '%(kind)s (incident %(incident_id)s)', dict(fault, cleared_by=cleared['cleared_by']),
                 instance_uuid=fault['instance_uuid'])

    def watch_event(self, event_type: str, payload: dict[str, Any]) -> None:
        """Log a watcher's alarm: WARNING when raised, INFO when cleared."""
        level = logging.WARNING if payload.get('state') == 'active' else logging.INFO
        LOG.log(level, '%s: %s', event_type, ', '.join('%s=%s' % item for item in sorted(payload.items())),
                instance_uuid=payload.get('instance_uuid'))  # None for a host's alarm: no prefix
