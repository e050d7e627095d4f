"""Unit tests of the configuration options."""
