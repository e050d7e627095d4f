"""Unit tests of the fault sinks."""
