"""Vitrage integration: the ``ha_guest`` datasource (loaded by vitrage-graph, not by ha_guest services)."""
