"""A stdlib HTTP stub of just enough Keystone v3, Nova and Masakari for openstacksdk, in a thread.

It serves version discovery, POST /v3/auth/tokens (with a catalog pointing at
itself), GET /servers/{id} (the embedded flavor carries ``extra_specs`` from
compute microversion 2.47 on, as Nova's does; ``server_groups`` from 2.71 on;
host, vm_state and the integer power_state per server), GET
/os-server-groups/{id} (members; ``policy``/``rules`` from 2.64 on, else
``policies``), POST /servers/{id}/action (``reboot`` and ``os-stop`` only;
recorded as an instance action on arrival, as Nova's API does before it
answers; a stop leaves the server SHUTOFF), GET
/servers/{id}/os-instance-actions (``changes-since``) and POST
/notifications of Masakari (checked against Masakari's request schema for
VM notifications; the same notification again within its duplicate
detection interval is refused with 409, as Masakari does). Every request is recorded with its arrival time; servers
and groups can be told to answer slowly. The tests, the demo and the SGM
benchmark use it; it is no Nova for production. Keystone's and Masakari's
documents and checks are in ha_guest.testing.stub_keystone_masakari.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import re
import threading
import time
import urllib.parse
import uuid
from typing import Any, Optional

from ha_guest.testing.stub_keystone_masakari import (
    MasakariNotifications,
    identity_versions,
    masakari_versions,
    token,
)

TOKEN = 'stub-token-' + uuid.uuid4().hex
PROJECT_ID = uuid.uuid4().hex
REGION = 'RegionOne'
#: Newest compute microversion the stub claims (Nova 34's range reaches past it).
COMPUTE_MAX_VERSION = '2.96'
#: Microversion from which Nova embeds the flavor, extra specs included, in a server.
EMBEDDED_FLAVOR_VERSION = (2, 47)
#: Microversion from which a server shows the server groups it is in.
SERVER_GROUPS_VERSION = (2, 71)
#: Microversion from which a server group has ``policy`` and ``rules`` instead of ``policies``.
GROUP_POLICY_VERSION = (2, 64)
#: Nova's power state names -> the integers of OS-EXT-STS:power_state.
POWER_STATES = {'pending': 0, 'running': 1, 'paused': 3, 'shutdown': 4, 'crashed': 6, 'suspended': 7}

_SERVER = re.compile(r'^/compute/v2\.1/servers/([^/]+)$')
_ACTION = re.compile(r'^/compute/v2\.1/servers/([^/]+)/action$')
_INSTANCE_ACTIONS = re.compile(r'^/compute/v2\.1/servers/([^/]+)/os-instance-actions$')
_GROUP = re.compile(r'^/compute/v2\.1/os-server-groups/([^/]+)$')
#: Nova's instance action names of the server actions the stub accepts.
_ACTION_NAMES = {'reboot': 'reboot', 'os-stop': 'stop'}


def _iso(epoch: float) -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(epoch)) + ('%.6f' % (epoch % 1))[1:]


@dataclasses.dataclass
class Request:
    """One request the stub received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() when it arrived


@dataclasses.dataclass
class Server:
    """A server the stub's Nova knows."""

    uuid: str
    extra_specs: dict[str, str]
    host: Optional[str] = 'cmp-1'
    vm_state: str = 'active'
    #: Nova's power state name; the API shows its integer.
    power_state: str = 'running'
    #: Seconds GET /servers/{id} waits before answering.
    get_delay: float = 0.0
    #: Seconds POST /servers/{id}/action waits before answering (the action is recorded on arrival).
    action_delay: float = 0.0
    #: Nova's instance actions of the server, oldest first: {"action", "request_id", "start_time", ...}.
    instance_actions: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def status(self) -> str:
        """The API's status of the server (from its vm_state)."""
        return {'stopped': 'SHUTOFF', 'error': 'ERROR', 'paused': 'PAUSED', 'suspended': 'SUSPENDED'}.get(
            self.vm_state, 'ACTIVE')


@dataclasses.dataclass
class ServerGroup:
    """A server group the stub's Nova knows."""

    uuid: str
    members: list[str]
    name: str = 'group'
    policy: str = 'anti-affinity'
    #: Seconds GET /os-server-groups/{id} waits before answering.
    get_delay: float = 0.0


def _microversion(headers: Any) -> tuple[int, int]:
    value = headers.get('OpenStack-API-Version', '')
    match = re.match(r'\s*compute\s+(\d+)\.(\d+)', value)
    if match is None:
        legacy = headers.get('X-OpenStack-Nova-API-Version', '')
        match = re.match(r'\s*(\d+)\.(\d+)', legacy)
    if match is None:
        return (2, 1)
    return (int(match.group(1)), int(match.group(2)))


class OpenStackStub:
    """The stub server; ``url`` is its base, ``auth_url`` Keystone's."""

    def __init__(self) -> None:
        self.servers: dict[str, Server] = {}
        self.groups: dict[str, ServerGroup] = {}
        self.requests: list[Request] = []
        self.lock = threading.RLock()  # wait_for() predicates call matching() under it
        self.arrived = threading.Condition(self.lock)
        self._stopping = threading.Event()
        self.masakari = MasakariNotifications()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'
            # Headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass  # quiet: the test reads stub.requests instead

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                stub._handle(self, 'GET')

            def do_POST(self) -> None:  # noqa: N802
                stub._handle(self, 'POST')

        self._httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        self.auth_url = self.url + '/identity/v3'
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={'poll_interval': 0.05},
                                        name='openstack-stub', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers that were told to hang
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def add_server(self, extra_specs: Optional[dict[str, str]] = None, **kwargs: Any) -> Server:
        """Create a server whose flavor has ``extra_specs`` (``uuid`` and the other Server fields may be given)."""
        kwargs.setdefault('uuid', str(uuid.uuid4()))
        server = Server(extra_specs=dict(extra_specs or {}), **kwargs)
        with self.lock:
            self.servers[server.uuid] = server
        return server

    def add_group(self, members: Any = (), **kwargs: Any) -> ServerGroup:
        """Create a server group of ``members`` (Server objects or UUIDs); return it."""
        group = ServerGroup(str(uuid.uuid4()), [getattr(m, 'uuid', m) for m in members], **kwargs)
        with self.lock:
            self.groups[group.uuid] = group
        return group

    def add_to_group(self, group: ServerGroup, server: Any) -> None:
        """Make ``server`` (a Server or a UUID) a member of ``group``."""
        with self.lock:
            group.members.append(getattr(server, 'uuid', server))

    def change_server(self, server_uuid: str, **changes: Any) -> Server:
        """Change a server's fields (host, vm_state, power_state, delays); return it."""
        with self.lock:
            server = self.servers[server_uuid]
            for name, value in changes.items():
                if not hasattr(server, name):
                    raise AttributeError('stub server has no field %r' % name)
                setattr(server, name, value)
        return server

    def delete_server(self, server_uuid: str) -> None:
        """Delete a server: Nova forgets it and removes it from its groups."""
        with self.lock:
            self.servers.pop(server_uuid, None)
            for group in self.groups.values():
                if server_uuid in group.members:
                    group.members.remove(server_uuid)

    def delete_group(self, group_uuid: str) -> None:
        """Delete a server group (its servers stay)."""
        with self.lock:
            self.groups.pop(group_uuid, None)

    def groups_of(self, server_uuid: str) -> list[str]:
        """Return the UUIDs of the groups ``server_uuid`` is in (Nova allows one)."""
        with self.lock:
            return [group.uuid for group in self.groups.values() if server_uuid in group.members]

    # -- what the tests look at ---------------------------------------------------------------------

    def matching(self, method: str, suffix: str) -> list[Request]:
        """Return the recorded requests of ``method`` whose path ends with ``suffix``."""
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def actions(self, server_uuid: Optional[str] = None) -> list[Request]:
        """Return the recorded server actions (of one server if given)."""
        return self.matching('POST', '/servers/%s/action' % server_uuid if server_uuid else '/action')

    def notifications(self) -> list[Request]:
        """Return the recorded Masakari notification requests."""
        return self.matching('POST', '/instance-ha/v1/notifications')

    def instance_actions(self, server_uuid: str, name: Optional[str] = None) -> list[dict[str, Any]]:
        """Return the instance actions Nova recorded for a server (of one name, e.g. "reboot", if given)."""
        with self.lock:
            server = self.servers.get(server_uuid)
            actions = list(server.instance_actions) if server is not None else []
        return [a for a in actions if name is None or a['action'] == name]

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Wait until ``predicate()`` holds (checked on every request); return whether it did."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.arrived.wait(left)
        return True

    # -- serving ------------------------------------------------------------------------------------

    def _handle(self, handler: http.server.BaseHTTPRequestHandler, method: str) -> None:
        path = handler.path.split('?', 1)[0].rstrip('/') or '/'
        query = urllib.parse.parse_qs(handler.path.split('?', 1)[1]) if '?' in handler.path else {}
        length = int(handler.headers.get('Content-Length') or 0)
        raw = handler.rfile.read(length) if length else b''
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(handler, 400, {'error': 'body is not JSON'})
            return
        with self.arrived:
            self.requests.append(Request(method, path, dict(handler.headers.items()), body, time.monotonic()))
            self.arrived.notify_all()
        try:
            status, doc, headers = self._route(method, path, handler.headers, body, query)
        except Exception as exc:  # a bug in the stub must show, not hang the client
            status, doc, headers = 500, {'error': repr(exc)}, {}
        self._send(handler, status, doc, headers)

    def _send(self, handler: http.server.BaseHTTPRequestHandler, status: int, doc: Any,
              headers: Optional[dict[str, str]] = None) -> None:
        data = b'' if doc is None else json.dumps(doc).encode()
        try:
            handler.send_response(status)
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.send_header('Content-Type', 'application/json')
            handler.send_header('Content-Length', str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client gave up (a timeout under test): nobody to answer

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _route(self, method: str, path: str, headers: Any, body: Any,
               query: Optional[dict[str, list[str]]] = None) -> tuple[int, Any, dict[str, str]]:
        if method == 'GET' and path in ('/identity', '/identity/v3'):
            return 200, identity_versions(self.auth_url, path), {}
        if method == 'POST' and path == '/identity/v3/auth/tokens':
            return 201, token(body, self.url, REGION, PROJECT_ID), {'X-Subject-Token': TOKEN}
        if headers.get('X-Auth-Token') != TOKEN and not (method == 'GET' and path.count('/') <= 2):
            return 401, {'error': 'no or bad token'}, {}
        if method == 'GET' and path in ('/compute', '/compute/v2.1'):
            return 200, self._compute_versions(path), {}
        if method == 'GET' and path in ('/instance-ha', '/instance-ha/v1'):
            return 200, masakari_versions(self.url, path), {}
        match = _SERVER.match(path)
        if method == 'GET' and match:
            return self._get_server(match.group(1), headers)
        match = _GROUP.match(path)
        if method == 'GET' and match:
            return self._get_group(match.group(1), headers)
        match = _ACTION.match(path)
        if method == 'POST' and match:
            return self._action(match.group(1), body)
        match = _INSTANCE_ACTIONS.match(path.split('?', 1)[0])
        if method == 'GET' and match:
            return self._instance_actions(match.group(1), query)
        if method == 'POST' and path == '/instance-ha/v1/notifications':
            return self.masakari.create(body)
        return 404, {'error': 'no such resource %s %s' % (method, path)}, {}

    # -- Nova -----------------------------------------------------------------------------------------

    def _compute_versions(self, path: str) -> Any:
        version = {'id': 'v2.1', 'status': 'CURRENT', 'version': COMPUTE_MAX_VERSION, 'min_version': '2.1',
                   'updated': '2013-07-23T11:33:21Z', 'links': [{'rel': 'self', 'href': self.url + '/compute/v2.1/'}]}
        if path.endswith('/v2.1'):
            return {'version': version}
        return {'versions': [version]}

    def _get_server(self, server_uuid: str, headers: Any) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            server = self.servers.get(server_uuid)
        if server is None:
            return 404, {'itemNotFound': {'code': 404, 'message': 'Instance %s could not be found.' % server_uuid}}, {}
        self._sleep(server.get_delay)
        version = _microversion(headers)
        if version >= EMBEDDED_FLAVOR_VERSION:
            flavor: dict[str, Any] = {'vcpus': 1, 'ram': 512, 'disk': 1, 'ephemeral': 0, 'swap': 0,
                                      'original_name': 'm1.stub', 'extra_specs': dict(server.extra_specs)}
        else:
            flavor = {'id': 'stub-flavor', 'links': []}
        doc: dict[str, Any] = {'server': {
            'id': server.uuid, 'name': 'vm-%s' % server.uuid[:8], 'status': server.status, 'tenant_id': PROJECT_ID,
            'user_id': 'demo', 'flavor': flavor, 'metadata': {}, 'addresses': {}, 'links': [],
            'OS-EXT-SRV-ATTR:host': server.host, 'OS-EXT-STS:vm_state': server.vm_state,
            'OS-EXT-STS:task_state': None, 'OS-EXT-STS:power_state': POWER_STATES.get(server.power_state, 0),
        }}
        if version >= SERVER_GROUPS_VERSION:
            doc['server']['server_groups'] = self.groups_of(server.uuid)
        return 200, doc, {'OpenStack-API-Version': 'compute %d.%d' % version}

    def _get_group(self, group_uuid: str, headers: Any) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            group = self.groups.get(group_uuid)
            members = list(group.members) if group is not None else []
        if group is None:
            return 404, {'itemNotFound': {'code': 404, 'message': 'Instance group %s could not be found.'
                                          % group_uuid}}, {}
        self._sleep(group.get_delay)
        version = _microversion(headers)
        doc: dict[str, Any] = {'id': group.uuid, 'name': group.name, 'members': members, 'project_id': PROJECT_ID,
                               'user_id': 'demo'}
        if version >= GROUP_POLICY_VERSION:
            doc.update(policy=group.policy, rules={})
        else:
            doc.update(policies=[group.policy], metadata={})
        return 200, {'server_group': doc}, {'OpenStack-API-Version': 'compute %d.%d' % version}

    def _action(self, server_uuid: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            server = self.servers.get(server_uuid)
        if server is None:
            return 404, {'itemNotFound': {'code': 404, 'message': 'Instance %s could not be found.' % server_uuid}}, {}
        if body not in ({'reboot': {'type': 'HARD'}}, {'reboot': {'type': 'SOFT'}}, {'os-stop': None}):
            return 400, {'badRequest': {'code': 400, 'message': 'stub nova: unexpected action %r' % (body,)}}, {}
        name = _ACTION_NAMES[next(iter(body))]
        with self.lock:
            # Nova records the instance action in its API, before it answers (and before the compute host acts).
            server.instance_actions.append({
                'action': name, 'instance_uuid': server.uuid, 'request_id': 'req-%s' % uuid.uuid4(),
                'user_id': 'ha-guest', 'project_id': PROJECT_ID, 'start_time': _iso(time.time()),
                'message': None, 'updated_at': None})
            if name == 'stop':
                server.vm_state, server.power_state = 'stopped', 'shutdown'
        self._sleep(server.action_delay)
        return 202, None, {}

    def _instance_actions(self, server_uuid: str, query: Optional[dict[str, list[str]]]
                          ) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            server = self.servers.get(server_uuid)
            actions = [dict(a) for a in server.instance_actions] if server is not None else []
        if server is None:
            return 404, {'itemNotFound': {'code': 404, 'message': 'Instance %s could not be found.' % server_uuid}}, {}
        since = (query or {}).get('changes-since', [None])[0]
        if since:
            # Both are naive UTC ISO 8601 with microseconds: they compare as text.
            actions = [a for a in actions if a['start_time'] >= since]
        return 200, {'instanceActions': list(reversed(actions))}, {}  # Nova lists newest first



def nova_api_options(stub: OpenStackStub, **extra: Any) -> dict[str, Any]:
    """Return [nova_api] options that authenticate against ``stub`` (for a config file or set_override)."""
    options: dict[str, Any] = {
        'auth_type': 'password', 'auth_url': stub.auth_url, 'username': 'ha_guest', 'password': 'secret',
        'project_name': 'service', 'user_domain_name': 'Default', 'project_domain_name': 'Default',
        'region_name': REGION,
    }
    options.update(extra)
    return options


def configure_nova_api(conf: Any, stub: OpenStackStub, **extra: Any) -> None:
    """Point ``conf``'s [nova_api] at ``stub`` (registering the password plugin's options first)."""
    from keystoneauth1 import loading as ks_loading

    from ha_guest.conf import recovery as recovery_conf

    recovery_conf.register_opts(conf)
    conf.register_opts(ks_loading.get_auth_plugin_conf_options('password'), group=recovery_conf.NOVA_API_GROUP)
    for name, value in nova_api_options(stub, **extra).items():
        conf.set_override(name, value, group=recovery_conf.NOVA_API_GROUP)
