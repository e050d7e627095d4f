"""Errors the ha_guest RPC servers return; RPC clients re-raise them by class."""

from __future__ import annotations


class HAGuestRPCError(Exception):
    """Base of the errors an ha_guest RPC server sends back to its caller."""


class InvalidPayload(HAGuestRPCError, ValueError):
    """A fault, recovery, exit or state report lacks a key or has a bad value."""


class FaultRegistryFull(HAGuestRPCError):
    """The controller holds [controller] max_faults active faults already."""
