#!/bin/bash
# Make sure a local libvirtd answers on qemu:///system and libvirt-python can be built.
#
# Used by the `libvirt` and `nova` tox envs (commands_pre) and CI. Idempotent:
# exits 0 at once when everything is there. Otherwise installs libvirt's daemon,
# headers, pkg-config, QEMU and qemu-img (tests/nova creates the instance disk
# Nova's image backend would) with apt-get (only when root and missing), gives
# /dev/kvm to group kvm as udev would, starts virtlogd and libvirtd as daemons
# (there is no systemd on these machines) and waits, bounded, for
# `virsh -c qemu:///system version`. Fails loudly, so the tests never run (or
# skip) without libvirt.
#
# Environment: LIBVIRT_URI (qemu:///system), LIBVIRT_WAIT_S (seconds to wait
#              for libvirtd to answer, 30).
set -euo pipefail

uri=${LIBVIRT_URI:-qemu:///system}
wait_s=${LIBVIRT_WAIT_S:-30}
packages="libvirt-daemon-system libvirt-dev pkg-config qemu-system-x86 qemu-utils"

fail() {
    echo "error: $*" >&2
    exit 1
}

have_packages() {
    command -v libvirtd >/dev/null 2>&1 &&
        command -v virtlogd >/dev/null 2>&1 &&
        command -v virsh >/dev/null 2>&1 &&
        command -v virt-admin >/dev/null 2>&1 &&
        command -v qemu-system-x86_64 >/dev/null 2>&1 &&
        command -v qemu-img >/dev/null 2>&1 &&
        command -v pkg-config >/dev/null 2>&1 &&
        pkg-config --exists libvirt
}

answers() {
    # virsh can hang on a half-started daemon: bound it.
    timeout 10 virsh -c "$uri" version >/dev/null 2>&1
}

running() {
    # pgrep -x matches the process name exactly; never a broad pattern.
    pgrep -x "$1" >/dev/null 2>&1
}

kvm_fixed() {
    # Without udev (containers), /dev/kvm stays root-only. QEMU's capability
    # probe still sees KVM, but libvirtd checks access as libvirt-qemu, finds
    # none and re-probes QEMU on every domain start (about 48 s instead of
    # 0.5 s). Debian's udev rule gives it to group kvm, mode 0660: do the same.
    [ ! -e /dev/kvm ] || ! getent group kvm >/dev/null 2>&1 ||
        [ "$(stat -c '%G %a' /dev/kvm)" = "kvm 660" ] || [ "$(stat -c '%a' /dev/kvm)" = "666" ]
}

fix_kvm() {
    if ! kvm_fixed && [ "$(id -u)" -eq 0 ]; then
        echo "Giving /dev/kvm to group kvm (mode 0660), as udev would" >&2
        chgrp kvm /dev/kvm && chmod 0660 /dev/kvm || fail "could not set the group and mode of /dev/kvm"
    fi
}

if have_packages && kvm_fixed && answers; then
    exit 0
fi

if ! have_packages; then
    if [ "$(id -u)" -ne 0 ]; then
        fail "libvirt is missing; install it as root:" \
            "apt-get install -y --no-install-recommends $packages"
    fi
    command -v apt-get >/dev/null 2>&1 ||
        fail "libvirt is missing and apt-get is not available; install $packages (Debian names)"
    echo "Installing $packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Other scripts (ensure-rabbitmq.sh, ...) may be installing at the same time: wait for dpkg's lock.
    apt=(apt-get -o DPkg::Lock::Timeout=600)
    # Try without refreshing the package lists first: much faster when they are current.
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    if ! "${apt[@]}" install -y -qq --no-install-recommends $packages >/dev/null 2>&1; then
        "${apt[@]}" update -qq >/dev/null || fail "apt-get update failed"
        # shellcheck disable=SC2086
        "${apt[@]}" install -y -qq --no-install-recommends $packages >/dev/null ||
            fail "apt-get install $packages failed"
    fi
    have_packages ||
        fail "installed $packages but libvirtd, virtlogd, virsh, qemu-system-x86_64, qemu-img or libvirt's pkg-config file is still missing"
fi

fix_kvm

if ! answers; then
    if [ "$(id -u)" -ne 0 ]; then
        fail "libvirtd does not answer on $uri and this user can't start it; start it as root:" \
            "virtlogd -d; libvirtd -d"
    fi
    # No systemd here: run the daemons ourselves. virtlogd first, since libvirtd
    # hands QEMU's console log to it when a domain starts.
    if ! running virtlogd; then
        echo "Starting virtlogd" >&2
        virtlogd -d || fail "virtlogd -d failed"
    fi
    if ! running libvirtd; then
        echo "Starting libvirtd" >&2
        libvirtd -d || fail "libvirtd -d failed"
    fi
fi

deadline=$((SECONDS + wait_s))
until answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        fail "libvirtd did not answer on $uri within ${wait_s}s;" \
            "try 'virsh -c $uri version' and see /var/log/libvirt/"
    fi
    sleep 0.5
done
echo "libvirtd answers on $uri" >&2
