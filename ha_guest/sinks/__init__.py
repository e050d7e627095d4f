"""Fault sinks of the controller, loaded by name from the ha_guest.fault_sinks entry points."""
