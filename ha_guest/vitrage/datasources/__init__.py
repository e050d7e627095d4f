"""Datasource packages for Vitrage's ``[datasources] path``.

vitrage-graph imports ``<path>.<name>`` for every name in ``[datasources] types``,
so listing ``ha_guest.vitrage.datasources`` in ``path`` and ``ha_guest`` in
``types`` loads :mod:`ha_guest.vitrage.datasources.ha_guest`.
"""
