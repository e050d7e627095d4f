"""Fuzzing of the guest boundary: the host channel path and the guest agent's frame handling."""
