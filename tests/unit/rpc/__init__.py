"""Unit tests of the RPC client APIs."""
