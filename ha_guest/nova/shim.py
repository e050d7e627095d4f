"""Nova's name for our driver: ``[DEFAULT] compute_driver = ha_guest.HAGuestLibvirtDriver``.

nova-compute imports ``nova.virt.<compute_driver>`` and nothing else, so the
wheel ships this file a second time as ``nova/virt/ha_guest/__init__.py`` (see
setup.py). Keep it a bare re-export: it runs inside Nova's package.
"""

from ha_guest.nova.driver import HAGuestLibvirtDriver

__all__ = ["HAGuestLibvirtDriver"]
