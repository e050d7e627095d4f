"""Test helpers shipped in the package: a scripted host side for functional tests, bounded waits, and the benchmark.

Nothing here is production code: the real host side is the compute agent.
"""

from ha_guest.testing.events import ChallengeRecord, Event, EventLog
from ha_guest.testing.scripted_host import ScriptedHost
from ha_guest.testing.waiting import WaitTimeout, wait_for

__all__ = ['ChallengeRecord', 'Event', 'EventLog', 'ScriptedHost', 'WaitTimeout', 'wait_for']
