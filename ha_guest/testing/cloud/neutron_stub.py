"""A Neutron that knows no ports: what Nova 34 still asks the network service for when servers have none.

Measured on the cloud: with ``networks: none`` nova-api's server show still lists the instance's security
groups through Neutron (HTTP 500 EndpointNotFound without a 'network' endpoint), and nova-compute's
delete still asks Neutron to deallocate (the instance goes to ERROR without a [neutron] section). Every
list answers empty, every other call 404. Run: ``python -m ha_guest.testing.cloud.neutron_stub PORT``.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Collections Nova lists; each answers an empty list.
EMPTY = ('ports', 'networks', 'security_groups', 'floatingips', 'subnets', 'extensions', 'qos_policies')


class Handler(BaseHTTPRequestHandler):
    """Empty lists for GET of a known collection, 404 for anything else."""

    def _send(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Connection', 'close')
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = urllib.parse.urlparse(self.path).path.rstrip('/')
        name = path.rsplit('/', 1)[-1].replace('-', '_')
        if path in ('', '/v2.0'):
            self._send(200, {'versions': [{'id': 'v2.0', 'status': 'CURRENT',
                                           'links': [{'rel': 'self', 'href': '/v2.0/'}]}]})
        elif name in EMPTY:
            self._send(200, {name: []})
        else:
            self._send(404, {'NeutronError': {'type': 'NotFound', 'message': path, 'detail': ''}})

    def do_DELETE(self) -> None:  # noqa: N802
        self._send(404, {'NeutronError': {'type': 'NotFound', 'message': self.path, 'detail': ''}})

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
        sys.stderr.write('neutron-stub: %s\n' % (format % args))


def main() -> None:
    """Serve on 127.0.0.1:PORT until killed."""
    server = ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), Handler)
    server.serve_forever()


if __name__ == '__main__':
    main()
