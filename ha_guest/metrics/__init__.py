"""Prometheus metrics of ha-guest-compute and ha-guest-controller (opt-in: [metrics] listen_port).

The services keep plain counters of their own as they work; the collectors
here read them when Prometheus scrapes, so nothing on the compute agent's
heartbeat path touches a prometheus_client object. Only ``server`` and the
collectors import prometheus_client; ``buckets`` and ``definitions`` are
plain Python that the services and tests import freely.
"""
