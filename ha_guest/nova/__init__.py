"""Nova integration: libvirt driver subclass, channel builder and extra-spec validators.

This is the only package of ha_guest that imports Nova, and only its ``driver``
and ``extra_specs`` modules do; ``specs`` and ``channel`` are pure and importable
without Nova.
"""
