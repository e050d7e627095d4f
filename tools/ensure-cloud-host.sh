#!/bin/bash
# Make sure this host can run the `cloud` tox env's small OpenStack.
#
# Idempotent: RabbitMQ (tools/ensure-rabbitmq.sh), libvirtd + QEMU
# (tools/ensure-libvirt.sh) and MariaDB from the distribution (installed with
# apt-get when root and missing, started without systemd, waited for, bounded).
# The cloud's own databases and RabbitMQ vhost are created by
# ha_guest.testing.cloud, never the system's defaults.
#
# Environment: MARIADB_WAIT_S (seconds to wait for the server's socket, 60).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
wait_s=${MARIADB_WAIT_S:-60}
socket=/run/mysqld/mysqld.sock

fail() {
    echo "error: $*" >&2
    exit 1
}

answers() {
    timeout 10 mariadb --protocol=socket -S "$socket" -uroot -e 'SELECT 1' >/dev/null 2>&1
}

bash "$here/ensure-rabbitmq.sh"
bash "$here/ensure-libvirt.sh"

if ! command -v mariadbd >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || fail "MariaDB is missing; install it as root: apt-get install -y mariadb-server"
    export DEBIAN_FRONTEND=noninteractive
    apt=(apt-get -o DPkg::Lock::Timeout=600)
    if ! "${apt[@]}" install -y -qq --no-install-recommends mariadb-server >/dev/null 2>&1; then
        "${apt[@]}" update -qq >/dev/null || fail "apt-get update failed"
        "${apt[@]}" install -y -qq --no-install-recommends mariadb-server >/dev/null ||
            fail "apt-get install mariadb-server failed"
    fi
fi

if ! answers; then
    [ "$(id -u)" -eq 0 ] || fail "MariaDB does not answer on $socket; start it as root: mysqld_safe &"
    if ! pgrep -x mariadbd >/dev/null 2>&1; then
        # No systemd here: the daemon in the background, its own log file.
        install -d -o mysql -g mysql /run/mysqld
        echo "Starting mariadbd" >&2
        setsid mariadbd --user=mysql >/var/log/mysql-cloud.log 2>&1 < /dev/null &
    fi
fi

deadline=$((SECONDS + wait_s))
until answers; do
    [ "$SECONDS" -lt "$deadline" ] ||
        fail "MariaDB did not answer on $socket within ${wait_s}s; see /var/log/mysql-cloud.log"
    sleep 0.5
done
echo "MariaDB answers on $socket" >&2
