"""oslo.messaging on a private ConfigOpts, as ha_guest's services configure it (demo, benchmark, tests)."""

from __future__ import annotations

import importlib
import os
import socket
import urllib.parse
from typing import Any

from oslo_config import cfg

from ha_guest import conf as ha_conf

#: The vhost of the tests and benchmarks on a shared broker (tools/ensure-rabbitmq.sh creates it): a
#: development cloud's RabbitMQ keeps its exchanges (e.g. "openstack", declared with other options
#: than our tests' auto-delete ones: PRECONDITION_FAILED) in "/", never in ours.
TEST_VHOST = 'ha_guest_test'
DEFAULT_RABBIT_URL = 'rabbit://guest:guest@127.0.0.1:5672/' + TEST_VHOST

# The options oslo.messaging registers only on cfg.CONF, as its own ConfFixture registers them
# on a private ConfigOpts (module, attribute, group).
_MESSAGING_OPTS = (
    ('oslo_messaging._drivers.impl_rabbit', 'rabbit_opts', 'oslo_messaging_rabbit'),
    ('oslo_messaging._drivers.amqp', 'amqp_opts', 'oslo_messaging_rabbit'),
    ('oslo_messaging.rpc.client', '_client_opts', None),
    ('oslo_messaging.transport', '_transport_opts', None),
    ('oslo_messaging.rpc.dispatcher', '_dispatcher_opts', None),
    ('oslo_messaging.notify.notifier', '_notifier_opts', 'oslo_messaging_notifications'),
    ('oslo_messaging._metrics.client', 'oslo_messaging_metrics', 'oslo_messaging_metrics'),
    ('oslo_messaging._tracing.client', 'oslo_messaging_tracing', 'oslo_messaging_tracing'),
)
#: On a real broker: queues go with their last consumer; no AMQP heartbeat, so servers stop in ~1 s.
RABBIT_OPTIONS = {'amqp_auto_delete': True, 'heartbeat_timeout_threshold': 0}


def transport_url() -> str:
    """Return the broker URL of the benchmark and the tests: $HA_GUEST_TRANSPORT_URL or the local RabbitMQ."""
    return os.environ.get('HA_GUEST_TRANSPORT_URL') or DEFAULT_RABBIT_URL


def check_broker(url: str, timeout: float = 3.0) -> None:
    """Raise ConnectionError with a clear message unless the broker's first host lets us into the URL's vhost."""
    # oslo.messaging URLs may list several hosts ("user:pw@h1:5672,user:pw@h2:5672"): check the first.
    split = urllib.parse.urlsplit(url)
    first = split.netloc.split(',')[0]
    parsed = urllib.parse.urlsplit('//' + first)
    host, port = parsed.hostname or '127.0.0.1', parsed.port or 5672
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ConnectionError('RabbitMQ not reachable at %s:%s (%s); start one with tools/ensure-rabbitmq.sh'
                              % (host, port, exc)) from None
    if not split.scheme.startswith('rabbit'):
        return
    # A missing vhost would make oslo.messaging retry for ever: say so at once.
    import kombu

    vhost = urllib.parse.unquote(split.path[1:]) if len(split.path) > 1 else '/'
    amqp = kombu.Connection(hostname=host, port=port, userid=urllib.parse.unquote(parsed.username or 'guest'),
                            password=urllib.parse.unquote(parsed.password or 'guest'), virtual_host=vhost,
                            connect_timeout=timeout)
    try:
        amqp.connect()
    except Exception as exc:  # noqa: BLE001 - any refusal: access, vhost, authentication
        raise ConnectionError('RabbitMQ at %s:%s refuses vhost %r (%s); tools/ensure-rabbitmq.sh creates %r'
                              % (host, port, vhost, exc, TEST_VHOST)) from None
    finally:
        amqp.release()


def make_conf(transport_url: str, host: str, groups: dict[str, dict[str, Any]]) -> cfg.ConfigOpts:
    """Return a private ConfigOpts with every ha_guest and oslo.messaging option, set as given."""
    from ha_guest.rpc import transport  # imports oslo.messaging: only once the caller refused eventlet

    conf = cfg.ConfigOpts()
    for module, attribute, group in _MESSAGING_OPTS:
        conf.register_opts(getattr(importlib.import_module(module), attribute), group=group)
    ha_conf.register_all(conf)
    transport.set_defaults(conf)  # our services' exchange, as their command lines set it
    conf([], project='ha_guest', default_config_files=[], default_config_dirs=[])
    conf.set_override('transport_url', transport_url)
    conf.set_override('host', host)
    if transport_url.startswith('rabbit'):
        for name, value in RABBIT_OPTIONS.items():
            conf.set_override(name, value, group='oslo_messaging_rabbit')
    for group, values in groups.items():
        for name, value in values.items():
            conf.set_override(name, value, group=None if group == 'DEFAULT' else group)
    return conf


def service_config(path: str, transport_url: str, host: str, groups: dict[str, dict[str, Any]]) -> str:
    """Write an INI file for ha-guest-compute / ha-guest-controller (``--config-file``); return its path."""
    values: dict[str, dict[str, Any]] = {'DEFAULT': {'host': host, 'transport_url': transport_url}}
    if transport_url.startswith('rabbit'):
        values['oslo_messaging_rabbit'] = dict(RABBIT_OPTIONS)
    for group, options in groups.items():
        values.setdefault(group, {}).update(options)
    lines = []
    for group, options in values.items():
        lines.append('[%s]' % group)
        for name, value in options.items():
            if isinstance(value, (list, tuple)):
                value = ','.join(value)
            lines.append('%s = %s' % (name, value))
        lines.append('')
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('\n'.join(lines))
    os.chmod(path, 0o600)  # it holds the broker's credentials
    return path
