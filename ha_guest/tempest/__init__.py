"""The tempest plugin of ha_guest (entry point ``tempest.test_plugins``: ha_guest).

The only room that imports tempest: ``plugin`` and ``tests`` need it, ``config``
(oslo.config only) and ``settings`` (stdlib only) do not, so the devstack plugin
and the cloud env's runner can write the options without tempest installed.
No service module of ha_guest imports anything from here.
"""
