"""The guest side: ha-guest-agent, its local API and the ha-guest-client library and CLI."""
