"""Two ConfigOpts of one process keep their overrides apart, for every [group] of ha_guest.conf.

oslo.config copies a registered OptGroup shallowly: two ConfigOpts given the same module-level
group object share its options' overrides (set_override on one showed on the other: a unit
test saw [metrics] listen_port 0 set by another test's conf). The demo runs a compute agent
and a controller, each with its own ConfigOpts, in one process.
"""

from __future__ import annotations

import importlib
import pkgutil

import testtools
from oslo_config import cfg

import ha_guest.conf
from ha_guest.conf import opts


def _modules() -> list[str]:
    return sorted(name for _, name, _ in pkgutil.iter_modules(ha_guest.conf.__path__) if name != 'opts')


def _registered(name: str) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    importlib.import_module('ha_guest.conf.%s' % name).register_opts(conf)
    conf([], default_config_files=[], default_config_dirs=[])
    return conf


class TestOverridesStayInTheirConf(testtools.TestCase):

    def test_every_group_of_every_module(self) -> None:
        checked = 0
        for name in _modules():
            module = importlib.import_module('ha_guest.conf.%s' % name)
            for group, options in opts._items(module.list_opts()):
                group_name = opts._name(group)
                if group_name == 'DEFAULT':
                    continue  # [DEFAULT] has no group object to share
                for opt in options:
                    try:
                        before = _registered(name)[group_name][opt.dest]
                    except cfg.NoSuchOptError:
                        continue  # listed for the sample only (keystoneauth's auth plugin options)
                    # second is read only after the override (a ConfigOpts caches what it was asked).
                    first, second = _registered(name), _registered(name)
                    # A value of the option's own type that differs from its default.
                    try:
                        first.set_override(opt.dest, _other_value(opt, before), group_name)
                    except ValueError:
                        continue  # no other valid value to set
                    self.assertNotEqual(before, first[group_name][opt.dest], (name, group_name, opt.dest))
                    self.assertEqual(before, second[group_name][opt.dest], (name, group_name, opt.dest))
                    checked += 1
        self.assertGreater(checked, 50)


def _other_value(opt: cfg.Opt, current: object) -> object:
    """A value for ``opt`` that is not ``current``; ValueError when none is easy to make."""
    if isinstance(opt, cfg.BoolOpt):
        return not current
    if isinstance(opt, (cfg.IntOpt, cfg.PortOpt)):
        low = opt.type.min if getattr(opt.type, 'min', None) is not None else 0
        high = opt.type.max if getattr(opt.type, 'max', None) is not None else low + 10
        for candidate in (low, high, low + 1):
            if candidate != current and low <= candidate <= high:
                return candidate
        raise ValueError(opt.dest)
    if isinstance(opt, cfg.FloatOpt):
        low = opt.type.min if getattr(opt.type, 'min', None) is not None else 0.0
        high = opt.type.max if getattr(opt.type, 'max', None) is not None else low + 10.0
        for candidate in (low, high):
            if candidate != current:
                return candidate
        raise ValueError(opt.dest)
    if isinstance(opt, cfg.ListOpt):
        return ['x'] if current != ['x'] else ['y']
    if isinstance(opt, cfg.StrOpt) and not getattr(opt.type, 'choices', None):
        return 'other-value' if current != 'other-value' else 'another'
    raise ValueError(opt.dest)
