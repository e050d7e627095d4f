"""The openstacksdk connection of the recovery sinks: keystoneauth from [nova_api], bounded HTTP timeouts."""

from __future__ import annotations

from typing import Any

import openstack.connection
import requests
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from ha_guest.conf import recovery as recovery_conf

#: User agent name in Nova's and Masakari's logs.
APP_NAME = 'ha_guest-controller'


class ApiConfigError(RuntimeError):
    """[nova_api] does not say how to authenticate."""


class TimeoutSession(requests.Session):
    """A requests session that gives every request a (connect, read) timeout.

    keystoneauth's session has a single timeout for both; a dead endpoint
    should fail fast on connect while a busy Nova gets longer to answer.
    """

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        super().__init__()
        self.timeouts = (connect_timeout, read_timeout)

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs['timeout'] = self.timeouts
        return super().request(method, url, *args, **kwargs)


def timeouts(conf: cfg.ConfigOpts) -> tuple[float, float]:
    """Return the (connect, read) timeout of each request, in seconds."""
    opts = conf[recovery_conf.NOVA_API_GROUP]
    read = opts.timeout if opts.timeout is not None else recovery_conf.READ_TIMEOUT_DEFAULT
    return float(opts.connect_timeout), float(read)


def connect(conf: cfg.ConfigOpts) -> openstack.connection.Connection:
    """Return a Connection authenticated as [nova_api] says; no request is made yet."""
    recovery_conf.register_opts(conf)
    group = recovery_conf.NOVA_API_GROUP
    opts = conf[group]
    auth = ks_loading.load_auth_from_conf_options(conf, group)
    if auth is None:
        raise ApiConfigError('[%s] auth_type is not set: the recovery sinks need credentials for the Nova and '
                             'Masakari APIs (e.g. auth_type = password, auth_url, username, password, '
                             'project_name, user_domain_name, project_domain_name)' % group)
    connect_timeout, read_timeout = timeouts(conf)
    session = ks_loading.load_session_from_conf_options(
        conf, group, auth=auth, session=TimeoutSession(connect_timeout, read_timeout))
    return openstack.connection.Connection(
        session=session, region_name=opts.region_name, interface=list(opts.valid_interfaces), app_name=APP_NAME)
