"""Validators for ``ha_guest:*`` flavor extra specs, loaded by nova-api.

Entry point group ``nova.api.extra_spec_validators``, name ``ha_guest``. nova-api
checks extra specs with these from microversion 2.86 on; once they are loaded
the ``ha_guest`` namespace is known, so a misspelt ``ha_guest:`` key is refused.
"""

from __future__ import annotations

from nova.api.validation.extra_specs import base

from ha_guest.nova import specs

EXTRA_SPEC_VALIDATORS = [
    base.ExtraSpecValidator(
        name=specs.HEARTBEAT,
        description=(
            "Whether the instance gets the ha_guest virtio-serial channel and is "
            "monitored by heartbeat and health check: the ha-guest-agent inside the "
            "guest registers and answers challenges, and a missed or unhealthy answer "
            "raises a fault. Independent of ha_guest:server_group_messaging: with "
            "heartbeat off and messaging on, the instance is never monitored and the "
            "host refuses the agent's registration with not_enabled. Overrides the "
            "image property ha_guest_heartbeat. Needs compute_driver = "
            "ha_guest.HAGuestLibvirtDriver on the compute host."
        ),
        value={
            "type": bool,
            "description": "Whether to enable heartbeat and health check monitoring.",
        },
    ),
    base.ExtraSpecValidator(
        name=specs.SERVER_GROUP_MESSAGING,
        description=(
            "Whether the instance gets the ha_guest virtio-serial channel for server "
            "group messaging, best effort: broadcasts of up to 3050 bytes to the other "
            "members of its Nova server group that have it enabled (in order per "
            "sender, the sender stamped by the host), notifications of those members' "
            "Nova state changes (power off/on, reboot, delete, migration, ...), and "
            "the Nova state of every member on request. The instance must be in a "
            "server group; without this spec its requests are refused with "
            "not_enabled. Overrides the image property "
            "ha_guest_server_group_messaging. Needs compute_driver = "
            "ha_guest.HAGuestLibvirtDriver on the compute host, and Nova's versioned "
            "notifications for the state changes."
        ),
        value={
            "type": bool,
            "description": "Whether to enable server group messaging.",
        },
    ),
    base.ExtraSpecValidator(
        name=specs.RECOVERY,
        description=(
            "What ha_guest does when a heartbeat fault is raised for the instance: "
            "nothing beyond reporting it (none), a hard reboot (reboot), stop the "
            "instance (stop), or hand the fault to Masakari as a VM notification "
            "(masakari). Only meaningful with ha_guest:heartbeat enabled; flavor "
            "only, an image cannot set it."
        ),
        value={
            "type": str,
            "description": "The recovery action.",
            "enum": list(specs.RECOVERY_ACTIONS),
        },
    ),
]


def register() -> list[base.ExtraSpecValidator]:
    """Return our validators; nova-api calls this when it loads the entry point."""
    return EXTRA_SPEC_VALIDATORS
