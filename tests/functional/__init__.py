"""Functional tests: real processes, sockets and a real RabbitMQ.

Host-side code imports oslo.messaging, which pulls in eventlet when it is
installed; refuse it before any test module is imported, as the services do.
"""

from ha_guest.cmd import prepare_process

prepare_process()
