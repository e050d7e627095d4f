"""Every ha_guest option, for oslo-config-generator (entry point oslo.config.opts: ha_guest)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, Union

from oslo_config import cfg

from ha_guest.conf import compute, controller, default, metrics, recovery, rpc, sgm, sinks

#: The option modules, one per group (sinks, recovery: two groups); register_all() and list_opts() walk them.
MODULES: tuple[ModuleType, ...] = (default, compute, controller, rpc, sinks, recovery, sgm, metrics)

GroupKey = Union[str, cfg.OptGroup, None]


def _items(listed: Union[Mapping[Any, list[cfg.Opt]], Iterable[tuple[Any, list[cfg.Opt]]]]
           ) -> Iterable[tuple[GroupKey, list[cfg.Opt]]]:
    # Modules may return {group: opts} or [(group, opts)]; oslo accepts both shapes.
    if isinstance(listed, Mapping):
        return listed.items()
    return listed


def _name(group: GroupKey) -> str:
    if group is None:
        return 'DEFAULT'
    return group.name if isinstance(group, cfg.OptGroup) else group


def list_opts() -> list[tuple[GroupKey, list[cfg.Opt]]]:
    """Return [(group, options)] for every ha_guest group, DEFAULT first."""
    by_name: dict[str, tuple[GroupKey, list[cfg.Opt]]] = {}
    for module in MODULES:
        for group, opts in _items(module.list_opts()):
            name = _name(group)
            if name in by_name:
                by_name[name][1].extend(opts)
            else:
                # An OptGroup carries the group's help into the sample; keep it when one is given.
                by_name[name] = (group, list(opts))
    return [by_name[name] for name in sorted(by_name, key=lambda n: (n != 'DEFAULT', n))]
