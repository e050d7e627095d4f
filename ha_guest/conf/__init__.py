"""oslo.config options of the ha_guest host services, one module per group."""

from __future__ import annotations

from oslo_config import cfg


def register_all(conf: cfg.ConfigOpts) -> None:
    """Register every ha_guest option on ``conf`` (safe to call more than once)."""
    from ha_guest.conf import opts  # local import: opts imports every option module

    for module in opts.MODULES:
        module.register_opts(conf)
