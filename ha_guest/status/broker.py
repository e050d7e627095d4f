"""A bounded look at the broker: can each host of a transport URL be reached and logged into?

oslo.messaging retries a lost broker for ever by default; the status command
and the upgrade check must answer within seconds, so they look first.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Optional

import oslo_messaging
from oslo_config import cfg


@dataclass(frozen=True)
class HostProbe:
    """The result for one broker host."""

    host: str
    port: int
    error: Optional[str]  # None: reachable and logged in

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        """Return "host:port ok" or "host:port: why"."""
        return '%s:%d %s' % (self.host, self.port, 'ok' if self.ok else self.error)


def probe(conf: cfg.ConfigOpts, url: Optional[str] = None, timeout: float = 3.0) -> list[HostProbe]:
    """Probe every host of ``url`` (default: [DEFAULT] transport_url): TCP connect, then the AMQP login."""
    parsed = oslo_messaging.TransportURL.parse(conf, url)
    results = []
    for host in parsed.hosts or [oslo_messaging.TransportHost(hostname='localhost', port=5672)]:
        name, port = host.hostname or 'localhost', int(host.port or 5672)
        results.append(HostProbe(name, port, _probe_host(parsed, host, timeout)))
    return results


def _probe_host(parsed: oslo_messaging.TransportURL, host: oslo_messaging.TransportHost,
                timeout: float) -> Optional[str]:
    name, port = host.hostname or 'localhost', int(host.port or 5672)
    try:
        with socket.create_connection((name, port), timeout=timeout):
            pass
    except OSError as exc:
        return 'unreachable (%s)' % (exc.strerror or exc)
    if not (parsed.transport or 'rabbit').startswith('rabbit') or _uses_tls(parsed):
        return None  # reachable is what can be told without the driver's TLS settings
    import kombu  # oslo.messaging's rabbit driver brings it

    vhost = parsed.virtual_host or '/'
    connection = kombu.Connection(hostname=name, port=port, userid=host.username or 'guest',
                                  password=host.password or 'guest', virtual_host=vhost, connect_timeout=timeout,
                                  transport_options={'max_retries': 0})
    try:
        connection.connect()
    except Exception as exc:  # noqa: BLE001 - any refusal: credentials, vhost, TLS
        return 'refuses the login to vhost %r (%s: %s)' % (vhost, type(exc).__name__, exc)
    finally:
        connection.release()
    return None


def _uses_tls(parsed: oslo_messaging.TransportURL) -> bool:
    conf = parsed.conf
    try:
        return bool(conf.oslo_messaging_rabbit.ssl) or 'ssl' in parsed.query
    except (cfg.NoSuchOptError, AttributeError):
        return 'ssl' in parsed.query


def masked(conf: cfg.ConfigOpts, url: Optional[str] = None) -> str:
    """Return ``url`` (default [DEFAULT] transport_url) without its passwords, for messages."""
    parsed = oslo_messaging.TransportURL.parse(conf, url)
    hosts = ','.join('%s@%s:%s' % (h.username or '', h.hostname, h.port or 5672) for h in parsed.hosts)
    return '%s://%s/%s' % (parsed.transport or 'rabbit', hosts, parsed.virtual_host or '')
