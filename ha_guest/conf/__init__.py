"""oslo.config options of the ha_guest host services, one module per group."""

from __future__ import annotations

from oslo_config import cfg


def register_all(conf: cfg.ConfigOpts) -> None:
    """Register every ha_guest option on ``conf`` (safe to call more than once)."""
    from ha_guest.conf import opts  # local import: opts imports every option module

    for module in opts.MODULES:
        module.register_opts(conf)


def register_group_opts(conf: cfg.ConfigOpts, template: cfg.OptGroup, opts: list[cfg.Opt]) -> None:
    """Register ``opts`` in a fresh copy of ``template`` on ``conf``.

    oslo.config copies a registered group shallowly, so ConfigOpts given the same module-level
    OptGroup would share its options' overrides (two services in one process, or tests).
    """
    conf.register_group(cfg.OptGroup(template.name, title=template.title, help=template.help))
    conf.register_opts(opts, group=template.name)
