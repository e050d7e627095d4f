#!/bin/bash
#
# devstack plugin for ha_guest.
#
# For now it only installs ha_guest from its checkout. The host services
# (ha-guest-compute on compute nodes, ha-guest-controller on controllers),
# their configuration, and the Nova/Vitrage integration come in later changes
# and will be added to the phases below.

# Save trace setting
_XTRACE_HA_GUEST=$(set +o | grep xtrace)
set -o xtrace

function install_ha_guest {
    # setup_develop installs the checkout with pip in editable mode,
    # honouring upper constraints.
    setup_develop "$HA_GUEST_DIR"
}

function configure_ha_guest {
    sudo install -d -o "$STACK_USER" "$HA_GUEST_CONF_DIR"
    # TODO(ha_guest): write ha_guest.conf and hook into nova.conf once the
    # host services and their options exist.
}

function start_ha_guest {
    # TODO(ha_guest): run_process ha-guest-compute / ha-guest-controller.
    :
}

function stop_ha_guest {
    # TODO(ha_guest): stop_process ha-guest-compute / ha-guest-controller.
    :
}

function cleanup_ha_guest {
    sudo rm -rf "$HA_GUEST_CONF_DIR"
}

if is_service_enabled ha_guest; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing ha_guest"
        install_ha_guest
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring ha_guest"
        configure_ha_guest
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting ha_guest"
        start_ha_guest
    fi

    if [[ "$1" == "unstack" ]]; then
        stop_ha_guest
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_ha_guest
    fi
fi

# Restore xtrace
$_XTRACE_HA_GUEST
