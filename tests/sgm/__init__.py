"""Server group messaging with Nova's own versioned notification objects on a real RabbitMQ: ``tox -e nova``.

Nova's native threading mode first (tests/nova), before any test module
imports Nova or oslo.messaging, whatever order their imports sort in. Nova's
unit-test package calls its monkey_patch.patch() again on import, which fails
once ha_guest's prepare_process() (tests/functional) has refused eventlet:
import it here, first.
"""

import tests.nova  # noqa: F401, I001 - first: it selects Nova's threading mode
import nova.tests.unit  # noqa: F401
