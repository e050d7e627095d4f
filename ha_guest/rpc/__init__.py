"""oslo.messaging RPC APIs of the ha_guest services: one versioned client class per service."""

from __future__ import annotations

from ha_guest.rpc.compute_api import COMPUTE_API_VERSION, ComputeAPI, compute_server_target
from ha_guest.rpc.controller_api import CONTROLLER_API_VERSION, ControllerAPI, controller_server_target
from ha_guest.rpc.errors import FaultRegistryFull, HAGuestRPCError, InvalidPayload
from ha_guest.rpc.sync_api import CONTROLLER_SYNC_API_VERSION, ControllerSyncAPI, sync_server_target
from ha_guest.rpc.transport import get_notification_transport, get_rpc_server, get_rpc_transport

__all__ = [
    'COMPUTE_API_VERSION',
    'CONTROLLER_API_VERSION',
    'CONTROLLER_SYNC_API_VERSION',
    'ComputeAPI',
    'ControllerAPI',
    'ControllerSyncAPI',
    'FaultRegistryFull',
    'HAGuestRPCError',
    'InvalidPayload',
    'compute_server_target',
    'controller_server_target',
    'get_notification_transport',
    'get_rpc_server',
    'get_rpc_transport',
    'sync_server_target',
]
