"""Nova's name for our driver: ``[DEFAULT] compute_driver = ha_guest.HAGuestLibvirtDriver``.

nova-compute imports ``nova.virt.<compute_driver>`` and nothing else; the
finder in ``virt_finder.py`` (installed by ``ha_guest_nova_driver.pth``) loads
this file as ``nova.virt.ha_guest``. Keep it a bare re-export.
"""

from ha_guest.nova.driver import HAGuestLibvirtDriver

__all__ = ["HAGuestLibvirtDriver"]
