#!/bin/bash
# Make sure promtool (Prometheus' rule checker) is installed, for the alert
# rules in etc/prometheus (tests/functional/test_alert_rules.py).
#
# Debian ships it in the prometheus package; installs it when missing and we
# are root (the server it brings is not started: only promtool is used);
# otherwise says what to install and fails, so tests never skip silently.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: promtool is missing; install Prometheus' promtool (Debian: apt-get install -y --no-install-recommends prometheus)" >&2
    exit 1
fi

echo "Installing prometheus for promtool" >&2
export DEBIAN_FRONTEND=noninteractive
# Other scripts may be installing at the same time: wait for dpkg's lock.
apt=(apt-get -o DPkg::Lock::Timeout=600)
if ! "${apt[@]}" install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; then
    "${apt[@]}" update -qq >/dev/null
    "${apt[@]}" install -y -qq --no-install-recommends prometheus >/dev/null
fi

command -v promtool >/dev/null 2>&1 || { echo "error: installed prometheus but promtool is still missing" >&2; exit 1; }
