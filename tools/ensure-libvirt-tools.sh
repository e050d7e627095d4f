#!/bin/bash
# Make sure virt-xml-validate (libvirt's domain XML schema check) is installed.
#
# Debian ships it in libvirt-clients (the schemas come with libvirt0) and the
# script runs xmllint from libxml2-utils. Installs them when missing and we are
# root; otherwise says what to install and fails, so tests never skip silently.
set -euo pipefail

have_tools() {
    command -v virt-xml-validate >/dev/null 2>&1 &&
        command -v xmllint >/dev/null 2>&1 &&
        [ -f /usr/share/libvirt/schemas/domain.rng ]
}

if have_tools; then
    exit 0
fi

packages="libvirt-clients libxml2-utils"
if [ "$(id -u)" -ne 0 ]; then
    echo "error: virt-xml-validate is missing; install it as root: apt-get install -y --no-install-recommends $packages" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: virt-xml-validate is missing and apt-get is not available; install libvirt's client tools ($packages on Debian)" >&2
    exit 1
fi

echo "Installing $packages for virt-xml-validate" >&2
export DEBIAN_FRONTEND=noninteractive
# Other scripts (ensure-libvirt.sh, ensure-rabbitmq.sh, ...) may be installing at the same time: wait for dpkg's lock.
apt=(apt-get -o DPkg::Lock::Timeout=600)
"${apt[@]}" update -qq >/dev/null
# shellcheck disable=SC2086  # word splitting of the package list is intended
"${apt[@]}" install -y -qq --no-install-recommends $packages >/dev/null

if ! have_tools; then
    echo "error: installed $packages but virt-xml-validate, xmllint or the domain schema is still missing" >&2
    exit 1
fi
