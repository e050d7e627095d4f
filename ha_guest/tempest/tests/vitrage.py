"""A small client of Vitrage's API (service type ``rca``): is there an ha_guest alarm on a server?"""

from __future__ import annotations

import json
from typing import Any, Optional

from tempest import config
from tempest.lib.common import rest_client

CONF = config.CONF


class VitrageClient(rest_client.RestClient):
    """GET /v1/resources and /v1/alarm, the two calls the tests need."""

    def get_json(self, url: str) -> Any:
        resp, body = self.get(url)
        self.expected_success(200, resp.status)
        return json.loads(body)


def client(manager: Any) -> VitrageClient:
    """A Vitrage client with the credentials of ``manager`` (admin: alarms of every project)."""
    return VitrageClient(manager.auth_provider, 'rca', CONF.identity.region,
                         endpoint_type=CONF.identity.v3_endpoint_type,
                         disable_ssl_certificate_validation=CONF.identity.disable_ssl_certificate_validation,
                         ca_certs=CONF.identity.ca_certificates_file, trace_requests=CONF.debug.trace_requests)


def ha_guest_alarm(vitrage: VitrageClient, server_id: str) -> Optional[dict[str, Any]]:
    """The first alarm of type ``ha_guest`` on the server's nova.instance vertex, or None."""
    resources = vitrage.get_json('v1/resources/?resource_type=nova.instance&all_tenants=True')
    vertex = next((item for item in resources if item.get('id') == server_id), None)
    if vertex is None:
        return None
    alarms = vitrage.get_json('v1/alarm/?vitrage_id=%s&all_tenants=True' % vertex['vitrage_id'])
    return next((alarm for alarm in alarms if alarm.get('vitrage_type') == 'ha_guest'), None)
