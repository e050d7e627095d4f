"""Unit tests of the compute agent."""

from ha_guest.cmd import prepare_process

# The compute agent imports oslo.messaging: refuse eventlet first, as its service main does.
prepare_process()
