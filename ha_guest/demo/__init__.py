"""ha-guest-demo: the heartbeat chain on one machine (``python -m ha_guest.demo``, ``tox -e demo``).

Real ha-guest-agent processes on emulated channels, the real compute agent
and controller in this process (oslo.messaging's in-process ``fake``
transport by default), and a real Vitrage entity graph in process: a hung
guest and an unhealthy one become alarms on their instances, then recover.
"""

from __future__ import annotations

from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo (console script ha-guest-demo); return the exit status."""
    # Imported here: the package itself has no import-time side effects.
    from ha_guest.demo.cli import main as run

    return run(argv)
