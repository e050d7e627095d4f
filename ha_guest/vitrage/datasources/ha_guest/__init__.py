"""The ``ha_guest`` Vitrage datasource: guest heartbeat faults as alarms on their instances.

Vitrage registers :data:`OPTS` in the ``[ha_guest]`` group of vitrage.conf when
``ha_guest`` is listed in ``[datasources] types``. This module imports only
oslo.config, so the options can be listed (sample config, docs) where Vitrage
is not installed; the option names equal Vitrage's ``DatasourceOpts`` values
and the update method equals ``UpdateMethod.PUSH`` (checked by tests).
"""

from __future__ import annotations

from oslo_config import cfg

HA_GUEST_DATASOURCE = "ha_guest"

_PACKAGE = "ha_guest.vitrage.datasources.ha_guest"

OPTS = [
    cfg.StrOpt(
        "transformer",
        default=f"{_PACKAGE}.transformer.HAGuestTransformer",
        required=True,
        help="Class path of the ha_guest transformer.",
    ),
    cfg.StrOpt(
        "driver",
        default=f"{_PACKAGE}.driver.HAGuestDriver",
        required=True,
        help="Class path of the ha_guest driver.",
    ),
    cfg.StrOpt(
        "update_method",
        default="push",
        required=True,
        help="push: faults arrive as notifications on [datasources] notification_topics "
        "(ha_guest's vitrage sink sends them), and every snapshot asks the ha_guest "
        "controller for the current faults.",
    ),
    cfg.StrOpt(
        "controller_topic",
        default="ha_guest_controller",
        help="RPC topic of ha-guest-controller ([rpc] controller_topic in ha_guest's configuration), "
        "asked for the current faults on every snapshot.",
    ),
    cfg.StrOpt(
        "controller_exchange",
        default="ha_guest",
        help="RPC exchange ha-guest-controller listens on: its [DEFAULT] control_exchange "
        "(ha_guest's services default to an exchange of their own, 'ha_guest'). Vitrage makes "
        "its own exchange ('vitrage') the default of every RPC client it builds, and a call sent to an exchange the "
        "controllers do not listen on is never delivered.",
    ),
    cfg.StrOpt(
        "controller_transport_url",
        secret=True,
        help="Messaging URL of the ha_guest controllers when they use another broker than "
        "Vitrage. Unset: Vitrage's own transport_url.",
    ),
    cfg.FloatOpt(
        "controller_call_timeout",
        default=10.0,
        min=0.1,
        help="Seconds a snapshot waits for the controller's list of faults. On timeout or "
        "any error the snapshot reports no change and the alarms already in the graph stay.",
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Return the datasource's options for oslo-config-generator (they belong in vitrage.conf)."""
    return [(HA_GUEST_DATASOURCE, OPTS)]
