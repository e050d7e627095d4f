"""Why ha-guest-status stops, and the exit status each reason gets."""

from __future__ import annotations

#: Exit statuses (beside cliff's 0 success, 1 error or bad usage, 2 argparse's usage error).
EXIT_BROKER = 3  # the broker is unreachable or refuses us
EXIT_NO_ANSWER = 4  # no controller (or compute agent) answered in time
EXIT_VERSION = 5  # a version cap or an older service does not allow the call
EXIT_NOT_FOUND = 6  # the instance or host asked for is not known


class StatusError(Exception):
    """A clear, expected failure: printed as one line, no traceback."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BrokerUnreachable(StatusError):
    """The broker of [DEFAULT] transport_url cannot be reached."""

    exit_code = EXIT_BROKER


class NoAnswer(StatusError):
    """A call got no reply within its timeout."""

    exit_code = EXIT_NO_ANSWER


class VersionTooOld(StatusError):
    """A version cap, or the service that answered, is older than the call needs."""

    exit_code = EXIT_VERSION


class NotFound(StatusError):
    """The instance or host asked for is not known."""

    exit_code = EXIT_NOT_FOUND
