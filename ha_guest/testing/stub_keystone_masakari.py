"""Keystone v3 and Masakari for the stand-in OpenStack (ha_guest.testing.openstack_stub): documents and checks.

Keystone: the version documents and a password token whose catalog points
at the stub. Masakari: the version documents and POST /notifications,
checked against Masakari's request schema for VM notifications; the same
notification again within Masakari's duplicate detection interval is
refused with 409, as Masakari does.
"""

from __future__ import annotations

import calendar
import json
import re
import threading
import time
import uuid
from typing import Any

#: Masakari's VM payload schema: exactly these keys, all required.
_VM_PAYLOAD_KEYS = {'instance_uuid', 'vir_domain_event', 'event'}
_NOTIFICATION_KEYS = {'type', 'hostname', 'generated_time', 'payload'}
_UUID = re.compile(r'^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$', re.I)
#: Masakari's [DEFAULT] duplicate_notification_detection_interval default (seconds).
DUPLICATE_INTERVAL_S = 180

Answer = tuple[int, Any, dict[str, str]]


def identity_versions(auth_url: str, path: str) -> Any:
    """Keystone's version document (of /identity or /identity/v3)."""
    version = {'id': 'v3.14', 'status': 'stable', 'updated': '2020-04-07T00:00:00Z',
               'links': [{'rel': 'self', 'href': auth_url + '/'}],
               'media-types': [{'base': 'application/json',
                                'type': 'application/vnd.openstack.identity-v3+json'}]}
    if path.endswith('/v3'):
        return {'version': version}
    return {'versions': {'values': [version]}}


def token(body: Any, url: str, region: str, project_id: str) -> Any:
    """A password token of the ha_guest user, with a catalog of identity, compute and instance-ha at ``url``."""
    auth = (body or {}).get('auth', {})
    if 'password' not in auth.get('identity', {}).get('methods', []):
        raise ValueError('stub keystone: only password authentication')

    def service(kind: str, name: str, endpoint: str) -> dict[str, Any]:
        endpoints = [{'id': uuid.uuid4().hex, 'interface': interface, 'region': region, 'region_id': region,
                      'url': endpoint} for interface in ('public', 'internal', 'admin')]
        return {'id': uuid.uuid4().hex, 'type': kind, 'name': name, 'endpoints': endpoints}

    expires = time.strftime('%Y-%m-%dT%H:%M:%S.000000Z', time.gmtime(time.time() + 3600))
    return {'token': {
        'methods': ['password'], 'expires_at': expires, 'issued_at': expires,
        'user': {'id': 'ha-guest', 'name': 'ha_guest', 'domain': {'id': 'default', 'name': 'Default'}},
        'project': {'id': project_id, 'name': 'service', 'domain': {'id': 'default', 'name': 'Default'}},
        'roles': [{'id': 'admin', 'name': 'admin'}],
        'catalog': [service('identity', 'keystone', url + '/identity'),
                    service('compute', 'nova', url + '/compute/v2.1'),
                    service('instance-ha', 'masakari', url + '/instance-ha/v1')],
    }}


def masakari_versions(url: str, path: str) -> Any:
    """Masakari's version document (of /instance-ha or /instance-ha/v1)."""
    version = {'id': 'v1.0', 'status': 'CURRENT', 'version': '1.2', 'min_version': '1.0',
               'updated': '2016-07-01T11:33:21Z', 'links': [{'rel': 'self', 'href': url + '/instance-ha/v1/'}]}
    if path.endswith('/v1'):
        return {'version': version}
    return {'versions': [version]}


class MasakariNotifications:
    """POST /notifications: schema checks and Masakari's refusal of duplicates (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Accepted: (hostname, type, payload as JSON, generated_time epoch).
        self._seen: list[tuple[str, str, str, float]] = []

    def create(self, body: Any) -> Answer:
        """Answer a notification request as Masakari's API would."""
        # Masakari's API schema: additionalProperties false everywhere, a VM payload of exactly three keys.
        problem = None
        note = body.get('notification') if isinstance(body, dict) and set(body) == {'notification'} else None
        if not isinstance(note, dict) or set(note) != _NOTIFICATION_KEYS:
            problem = 'notification must have exactly %s' % sorted(_NOTIFICATION_KEYS)
        elif note['type'] not in ('VM', 'PROCESS', 'COMPUTE_HOST'):
            problem = 'bad type %r' % note['type']
        elif note['type'] == 'VM' and (not isinstance(note['payload'], dict)
                                       or set(note['payload']) != _VM_PAYLOAD_KEYS
                                       or not _UUID.match(str(note['payload'].get('instance_uuid')))):
            problem = 'VM payload must have exactly %s, instance_uuid a UUID' % sorted(_VM_PAYLOAD_KEYS)
        elif not re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d', str(note['generated_time'])):
            problem = 'generated_time must be an ISO 8601 date-time'
        if problem or note is None:
            return 400, {'badRequest': {'code': 400, 'message': 'stub masakari: %s' % problem}}, {}
        seen = (note['hostname'], note['type'], json.dumps(note['payload'], sort_keys=True),
                float(calendar.timegm(time.strptime(note['generated_time'][:19], '%Y-%m-%dT%H:%M:%S'))))
        with self._lock:
            if any(old[:3] == seen[:3] and abs(old[3] - seen[3]) < DUPLICATE_INTERVAL_S for old in self._seen):
                # Masakari's DuplicateNotification (its API's 409).
                return 409, {'conflictingRequest': {'code': 409, 'message': 'Notification received from host %s '
                             'of type \'%s\' is duplicate.' % (note['hostname'], note['type'])}}, {}
            self._seen.append(seen)
        doc = dict(note, id=1, notification_uuid=str(uuid.uuid4()), status='new', source_host_uuid=str(uuid.uuid4()),
                   created_at=note['generated_time'], updated_at=None)
        return 202, {'notification': doc}, {}
