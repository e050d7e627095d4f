"""ha-guest-controller: fault registry, fault sinks and the controller RPC server."""
