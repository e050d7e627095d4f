"""ha-guest-status: what operators ask the running services (cliff commands over the RPC APIs).

A read-only client: it never changes a fault, an alarm or a guest. It reads
the services' own config file, talks to the controllers (ControllerAPI) and
to single compute agents (ComputeAPI) with bounded calls, and answers in
cliff's formats. Nothing here runs inside a service.
"""
