"""Unit tests of the compute agent."""
