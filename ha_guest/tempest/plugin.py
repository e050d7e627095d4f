"""The tempest plugin class (entry point ``tempest.test_plugins``: ``ha_guest``)."""

from __future__ import annotations

import os
from typing import Any

from tempest.test_discover import plugins

from ha_guest.tempest import config


class HAGuestTempestPlugin(plugins.TempestPlugin):
    """ha_guest's tests (ha_guest/tempest/tests) and options for tempest."""

    def load_tests(self) -> tuple[str, str]:
        """The tests folder and the top level that makes their ids ``ha_guest.tempest.tests...``."""
        here = os.path.dirname(os.path.abspath(__file__))
        top_level = os.path.dirname(os.path.dirname(here))
        return os.path.join(here, 'tests'), top_level

    def register_opts(self, conf: Any) -> None:
        """Register ``[service_available] ha_guest`` and the ``[ha_guest]`` group."""
        conf.register_opt(config.service_option, group='service_available')
        conf.register_group(config.group)
        conf.register_opts(config.opts, group=config.group.name)

    def get_opt_lists(self) -> list[tuple[str, list[Any]]]:
        """Our options per group, for ``tempest`` sample config generation."""
        return config.list_opts()
