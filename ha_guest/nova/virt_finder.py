"""Makes ``nova.virt.ha_guest`` importable without a file inside Nova's package.

nova-compute imports ``[DEFAULT] compute_driver`` as ``nova.virt.<value>`` and
nothing else. A file installed under ``site-packages/nova/`` would make that
folder a namespace package which wins over an editable Nova (devstack's
``pip install -e``, whose import hook comes after the path finder), so instead
``ha_guest_nova_driver.pth`` installs this finder when Python starts.

It runs in every Python process of the environment: standard library only, it
answers for exactly one module name, and it imports nothing of Nova or of the
driver until that name is imported. Nova's own package is found as usual.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from typing import Optional, Sequence

#: The module nova-compute imports for ``compute_driver = ha_guest.HAGuestLibvirtDriver``.
MODULE_NAME = 'nova.virt.ha_guest'
#: Where that module's code lives (a bare re-export of the driver class).
SHIM_MODULE = 'ha_guest.nova.shim'


class NovaVirtFinder:
    """Meta path finder that maps ``nova.virt.ha_guest`` to ``ha_guest.nova.shim``."""

    @classmethod
    def find_spec(cls, fullname: str, path: Optional[Sequence[str]] = None,
                  target: object = None) -> Optional[importlib.machinery.ModuleSpec]:
        """Return a spec loading the shim's file under Nova's name; None for any other name."""
        if fullname != MODULE_NAME:
            return None
        shim = importlib.util.find_spec(SHIM_MODULE)
        if shim is None or not shim.origin:
            return None
        return importlib.util.spec_from_file_location(MODULE_NAME, shim.origin)


def install() -> None:
    """Append the finder to ``sys.meta_path`` once (after the normal finders)."""
    if NovaVirtFinder not in sys.meta_path:
        sys.meta_path.append(NovaVirtFinder)
