from ha_guest.cmd import prepare_process

# These tests import oslo.messaging: refuse eventlet first, as the services do.
prepare_process()
