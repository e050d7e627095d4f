#!/bin/bash
# Make sure a RabbitMQ broker answers on 127.0.0.1:5672 (functional tests, benchmark, CI)
# and has the tests' own vhost.
#
# Idempotent: when the port already answers only the vhost is checked. Otherwise
# installs rabbitmq-server with apt-get (only when root and missing), starts it
# detached and polls the port. Fails loudly, so the tests never run (or skip)
# without it.
#
# The tests and benchmarks use the vhost "ha_guest_test"
# (ha_guest.testing.messaging.TEST_VHOST), never "/": on a development cloud's
# broker "/" holds the services' exchanges ("openstack", "nova"...), declared
# with options our tests' auto-delete ones would clash with (PRECONDITION_FAILED).
# The vhost is created here, with rabbitmqctl, and user guest may use it.
#
# Environment: RABBITMQ_HOST (127.0.0.1), RABBITMQ_PORT (5672),
#              RABBITMQ_WAIT_S (seconds to wait for the port, 60),
#              HA_GUEST_TEST_VHOST (ha_guest_test), HA_GUEST_TEST_USER (guest).
set -euo pipefail

host=${RABBITMQ_HOST:-127.0.0.1}
port=${RABBITMQ_PORT:-5672}
wait_s=${RABBITMQ_WAIT_S:-60}
vhost=${HA_GUEST_TEST_VHOST:-ha_guest_test}
user=${HA_GUEST_TEST_USER:-guest}

port_open() {
    # bash's /dev/tcp needs no extra tool; timeout bounds a hanging connect.
    timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" >/dev/null 2>&1
}

fail() {
    echo "error: $*" >&2
    exit 1
}

# The tests' vhost, with every permission for $user; a broker that is not local (or no
# rabbitmqctl) must have it already.
ensure_vhost() {
    if ! command -v rabbitmqctl >/dev/null 2>&1; then
        echo "warning: no rabbitmqctl here; the broker on $host:$port must have vhost $vhost" >&2
        return 0
    fi
    local deadline=$((SECONDS + wait_s)) vhosts
    # rabbitmqctl may refuse for a moment after the port opens (the node is still booting).
    until vhosts=$(rabbitmqctl -q list_vhosts name 2>/dev/null); do
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "rabbitmqctl list_vhosts failed for ${wait_s}s (root is needed to use rabbitmqctl)"
        fi
        sleep 1
    done
    if ! grep -qx -- "$vhost" <<<"$vhosts"; then
        echo "Adding vhost $vhost" >&2
        rabbitmqctl -q add_vhost "$vhost" >/dev/null || fail "rabbitmqctl add_vhost $vhost failed"
    fi
    rabbitmqctl -q set_permissions -p "$vhost" "$user" '.*' '.*' '.*' >/dev/null ||
        fail "rabbitmqctl set_permissions -p $vhost $user failed"
}

if port_open; then
    ensure_vhost
    exit 0
fi

if ! command -v rabbitmq-server >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        fail "RabbitMQ is not running on $host:$port and rabbitmq-server is not installed;" \
            "install it as root (apt-get install -y rabbitmq-server) or start a broker there"
    fi
    command -v apt-get >/dev/null 2>&1 ||
        fail "RabbitMQ is not running on $host:$port, rabbitmq-server is missing and apt-get is not available"
    echo "Installing rabbitmq-server" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Try without refreshing the package lists first: it is much faster when they are current.
    if ! apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null 2>&1; then
        apt-get update -qq >/dev/null || fail "apt-get update failed"
        apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null ||
            fail "apt-get install rabbitmq-server failed"
    fi
    command -v rabbitmq-server >/dev/null 2>&1 ||
        fail "installed rabbitmq-server but the rabbitmq-server command is still missing"
fi

# The Debian package may have started the broker itself (service scripts); check again.
if ! port_open; then
    if [ "$(id -u)" -ne 0 ] && [ ! -w /var/lib/rabbitmq ]; then
        fail "RabbitMQ is not running on $host:$port and this user can't start it; start it as root:" \
            "rabbitmq-server -detached"
    fi
    echo "Starting rabbitmq-server" >&2
    # -detached returns at once; a second start while one is booting only logs an error.
    rabbitmq-server -detached >/dev/null 2>&1 || true
fi

deadline=$((SECONDS + wait_s))
until port_open; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        fail "RabbitMQ did not answer on $host:$port within ${wait_s}s;" \
            "see /var/log/rabbitmq/ (rabbitmq-server -detached was started)"
    fi
    sleep 0.5
done
ensure_vhost
echo "RabbitMQ answers on $host:$port (vhost $vhost)" >&2
