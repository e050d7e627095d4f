"""Where ha_guest's Vitrage values file and template are: a source tree or an installed package."""

from __future__ import annotations

import os
import sys

VALUES_FILE = "ha_guest.yaml"
TEMPLATE_FILE = "ha_guest_heartbeat.yaml"

_SOURCE_TREE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "etc")


def vitrage_etc_dir() -> str:
    """Return the folder holding datasources_values/ and templates/ (source tree first, then sys.prefix)."""
    candidates = (
        os.path.join(_SOURCE_TREE, "vitrage"),
        # pbr's data_files: etc/ha_guest = etc/*
        os.path.join(sys.prefix, "etc", "ha_guest", "vitrage"),
    )
    for path in candidates:
        if os.path.isfile(os.path.join(path, "datasources_values", VALUES_FILE)):
            return path
    raise FileNotFoundError("ha_guest's Vitrage files are in none of: %s" % ", ".join(candidates))


def values_file() -> str:
    """Return the path of the values file (copy it into [entity_graph] datasources_values_dir)."""
    return os.path.join(vitrage_etc_dir(), "datasources_values", VALUES_FILE)


def template_file() -> str:
    """Return the path of the template (load it with `vitrage template add --path`)."""
    return os.path.join(vitrage_etc_dir(), "templates", TEMPLATE_FILE)
