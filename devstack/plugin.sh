#!/bin/bash
#
# devstack plugin for ha_guest.
#
# Installs ha_guest next to Nova (and Vitrage), configures nova-compute to run
# ha_guest's libvirt driver and Nova to send the notifications ha_guest and
# Vitrage read, writes /etc/ha_guest/ha_guest.conf, and runs the two host
# services: ha-guest-compute where nova-compute runs, ha-guest-controller
# where that service is enabled. See doc/source/devstack.rst.
#
# Phases (devstack calls this file once per phase):
#   stack install      install the package
#   stack post-config  write ha_guest.conf, nova.conf and vitrage.conf settings
#   stack extra        start the services, load the Vitrage template
#   stack test-config  tempest.conf: the plugin's options, our guest image in Glance
#   unstack            stop the services
#   clean              remove the configuration and state

# Save trace setting
_XTRACE_HA_GUEST=$(set +o | grep xtrace)
set -o xtrace

# Console scripts land where devstack puts every service's (its global venv
# by default), the same Python environment as Nova's and Vitrage's.
HA_GUEST_BIN_DIR=$(get_python_exec_prefix)

# The template Vitrage loads; the values file goes into its datasources_values_dir.
HA_GUEST_VITRAGE_VALUES=$HA_GUEST_DIR/etc/vitrage/datasources_values/ha_guest.yaml
HA_GUEST_VITRAGE_TEMPLATE=$HA_GUEST_DIR/etc/vitrage/templates/ha_guest_heartbeat.yaml


# Helpers
# -------

# True where the package is needed: the two services, and nova-api (flavor
# extra-spec validators) and vitrage-graph (the datasource) load it too.
function is_ha_guest_needed {
    is_service_enabled ha-guest-compute ha-guest-controller n-api vitrage-graph
}

# True on a compute host that runs the agent: it watches nova-compute's
# libvirt domains, so it needs both services and Nova's libvirt driver.
function is_ha_guest_compute {
    is_service_enabled ha-guest-compute && is_service_enabled n-cpu && [[ "$VIRT_DRIVER" == "libvirt" ]]
}

# True when this host runs Vitrage's graph, the process that loads our datasource.
function is_ha_guest_vitrage {
    is_service_enabled vitrage-graph
}

# Add one item to a comma-separated list option of an ini file, once,
# starting from the option's default when the file does not set it yet.
# _ha_guest_ini_list_add file section option default item
function _ha_guest_ini_list_add {
    local file=$1 section=$2 option=$3 default=$4 item=$5
    local current
    current=$(iniget "$file" "$section" "$option")
    current=${current:-$default}
    if [[ ",${current// /}," != *",$item,"* ]]; then
        current=${current:+$current,}$item
    fi
    iniset "$file" "$section" "$option" "$current"
}

# Set an option in nova.conf and in the copies of it that exist already:
# nova-cpu.conf (nova-compute) and nova_cell<N>.conf (the cell conductors).
# devstack copies nova.conf into them after this plugin's post-config, but a
# re-stack finds the old copies, and Nova sends an instance's notifications
# from the compute host and the cell conductor, not from where we listen.
function _ha_guest_nova_iniset {
    iniset "$NOVA_CONF" "$1" "$2" "$3"
    local conf
    for conf in "${NOVA_CPU_CONF:-}" "${NOVA_CONF_DIR:-/etc/nova}"/nova_cell*.conf; do
        if [[ -n "$conf" && "$conf" != "$NOVA_CONF" && -f "$conf" ]]; then
            iniset "$conf" "$1" "$2" "$3"
        fi
    done
}

# Apply an ini fragment of ours (etc/nova/*.conf, the same files tox -e cloud
# applies) option by option through a setter: _ha_guest_apply_fragment
# fragment setter [setter args before section option value].
function _ha_guest_apply_fragment {
    local fragment=$1 setter=$2
    shift 2
    local line section="" key value
    while IFS= read -r line || [[ -n "$line" ]]; do
        line=${line%%#*}
        [[ "$line" =~ ^[[:space:]]*$ ]] && continue
        if [[ "$line" =~ ^[[:space:]]*\[([^]]+)\] ]]; then
            section=${BASH_REMATCH[1]}
        elif [[ "$line" =~ ^[[:space:]]*([A-Za-z0-9_.-]+)[[:space:]]*=[[:space:]]*(.*[^[:space:]])?[[:space:]]*$ ]]; then
            key=${BASH_REMATCH[1]}
            value=${BASH_REMATCH[2]}
            "$setter" "$@" "$section" "$key" "$value"
        fi
    done < "$fragment"
}

# Nova's notification_format that keeps what is there and adds the versioned
# notifications ha_guest needs: unversioned (Nova's default) becomes both.
function _ha_guest_notification_format {
    local current
    current=$(iniget "$NOVA_CONF" notifications notification_format)
    current=${current:-${NOVA_NOTIFICATION_FORMAT:-unversioned}}
    case "$current" in
        versioned) echo versioned ;;
        *) echo both ;;
    esac
}

# The name Nova knows this host by: the compute agent reports faults under it
# and Masakari and the controller match it against Nova's host.
function _ha_guest_host {
    local host=""
    if [[ -f "$NOVA_CONF" ]]; then
        host=$(iniget "$NOVA_CONF" DEFAULT host)
    fi
    # Nova's default, like ha_guest's own, is the host name.
    echo "${host:-$(hostname)}"
}

# QEMU's group, whose members reach the channel sockets (mode 0775, in
# directories of mode 0750 under /var/lib/libvirt/qemu).
function _ha_guest_qemu_group {
    local group=${HA_GUEST_QEMU_GROUP:-}
    local conf=${_HA_GUEST_QEMU_CONF:-/etc/libvirt/qemu.conf} dir=${_HA_GUEST_QEMU_DIR:-/var/lib/libvirt/qemu}
    if [[ -z "$group" && -r "$conf" ]]; then
        group=$(sed -n 's/^[[:space:]]*group[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$conf" | tail -n 1)
    fi
    if [[ -z "$group" && -d "$dir" ]]; then
        group=$(stat -c %G "$dir")
    fi
    echo "${group:-libvirt-qemu}"
}

# The compute agent's system user, in QEMU's group. Read-only libvirt needs no
# group (polkit's org.libvirt.unix.monitor allows any local user, and devstack
# leaves the read-only socket to polkit); the "libvirt" group, which devstack
# gives $STACK_USER for nova-compute, would let it manage every domain.
function create_ha_guest_compute_user {
    if ! getent passwd "$HA_GUEST_COMPUTE_USER" >/dev/null; then
        sudo useradd --system --user-group --home-dir "$HA_GUEST_STATE_DIR" --shell /usr/sbin/nologin \
            "$HA_GUEST_COMPUTE_USER"
    fi
    sudo usermod --append --groups "$(_ha_guest_qemu_group)" "$HA_GUEST_COMPUTE_USER"
}

# Vitrage's master branch is empty since its retirement (2026) and devstack
# then skips its plugin silently: say so instead of running without it.
function _ha_guest_check_vitrage_branch {
    local plugins=",${DEVSTACK_PLUGINS},"
    if [[ "$plugins" == *",vitrage,"* ]] && ! is_ha_guest_vitrage; then
        warn $LINENO "enable_plugin vitrage is set but vitrage-graph is not enabled: Vitrage's master branch is" \
            "empty since its retirement; use its stable/2025.2 branch. ha_guest runs without the vitrage sink."
    fi
}

# Vitrage's post-config phase rewrites [datasources] types, and its extra phase
# starts the API the template is loaded through: both must run before ours.
function _ha_guest_check_plugin_order {
    local plugins=",${DEVSTACK_PLUGINS},"
    if ! is_ha_guest_vitrage || [[ "$plugins" != *",vitrage,"* || "$plugins" != *",ha_guest,"* ]]; then
        return 0
    fi
    local before_us="${plugins%%,ha_guest,*},"
    if [[ "$before_us" != *",vitrage,"* ]]; then
        die $LINENO "enable_plugin ha_guest must come after enable_plugin vitrage in local.conf"
    fi
}


# Install
# -------

function install_ha_guest {
    _ha_guest_check_plugin_order
    _ha_guest_check_vitrage_branch

    local extras=""
    if is_ha_guest_compute; then
        # The libvirt discovery driver needs libvirt-python, which builds
        # against libvirt's headers (devstack's libvirt setup usually has them).
        if is_ubuntu; then
            install_package libvirt-dev pkg-config
        else
            install_package libvirt-devel pkgconfig
        fi
        extras=libvirt
    fi

    # NOT setup_develop: nova-compute imports [DEFAULT] compute_driver as
    # nova.virt.<value>; ha_guest's wheel makes that name resolve through
    # site-packages/ha_guest_nova_driver.pth (a finder for exactly
    # nova.virt.ha_guest; see doc/source/nova.rst), which also works beside
    # devstack's editable Nova. An editable install of ha_guest itself carries
    # no such top-level file, and nova-compute would then fail with "Unable to
    # load the virtualization driver". setup_install is devstack's
    # non-editable pip install with upper constraints; re-run stack.sh to pick
    # up changes to the checkout.
    setup_install "$HA_GUEST_DIR" "$extras"
}


# Configure
# ---------

# /etc/ha_guest/ha_guest.conf, read by both services.
function configure_ha_guest {
    sudo install -d -o "$STACK_USER" -m 755 "$HA_GUEST_CONF_DIR"
    if is_ha_guest_compute; then
        # The compute agent writes its state file there, as its own user.
        create_ha_guest_compute_user
        sudo install -d -o "$HA_GUEST_COMPUTE_USER" -g "$STACK_USER" -m 770 "$HA_GUEST_STATE_DIR"
    else
        sudo install -d -o "$STACK_USER" -m 755 "$HA_GUEST_STATE_DIR"
    fi
    rm -f "$HA_GUEST_CONF"

    # [DEFAULT] transport_url: devstack's RabbitMQ, as for every other service.
    iniset_rpc_backend ha_guest "$HA_GUEST_CONF"
    iniset "$HA_GUEST_CONF" DEFAULT debug "$ENABLE_DEBUG_LOG_LEVEL"
    iniset "$HA_GUEST_CONF" DEFAULT host "$(_ha_guest_host)"
    setup_logging "$HA_GUEST_CONF"

    # The compute agent follows the local libvirtd's domains (read-only) and
    # keeps its state file under devstack's data dir, not /var/lib.
    iniset "$HA_GUEST_CONF" compute discovery_driver libvirt
    iniset "$HA_GUEST_CONF" compute libvirt_uri "$HA_GUEST_LIBVIRT_URI"
    iniset "$HA_GUEST_CONF" compute state_file "$HA_GUEST_STATE_DIR/compute-state.json"
    # The controller's announce journal (what it told the sinks, read again after a restart) too.
    iniset "$HA_GUEST_CONF" controller announce_journal "$HA_GUEST_STATE_DIR/controller-announced.jsonl"

    # Fault sinks: log and notifications always; vitrage when Vitrage runs;
    # recovery (hard reboot or stop through Nova, only for flavors with
    # ha_guest:recovery) with the service credentials below.
    local sinks=log,notifications
    if is_ha_guest_vitrage; then
        sinks+=,vitrage
        # Send where Vitrage listens (its [datasources] notification_topics).
        local topics
        topics=$(iniget "$VITRAGE_CONF" datasources notification_topics)
        iniset "$HA_GUEST_CONF" sink_vitrage topics "${topics:-vitrage_notifications}"
    fi
    sinks+=,recovery
    iniset "$HA_GUEST_CONF" controller fault_sinks "$sinks"

    # The recovery sink's Nova client, with devstack's service credentials
    # (the way Nova's own [neutron] and [placement] sections are written).
    iniset "$HA_GUEST_CONF" nova_api auth_type password
    iniset "$HA_GUEST_CONF" nova_api auth_url "$KEYSTONE_SERVICE_URI"
    iniset "$HA_GUEST_CONF" nova_api username "$HA_GUEST_SERVICE_USER"
    iniset "$HA_GUEST_CONF" nova_api password "$SERVICE_PASSWORD"
    iniset "$HA_GUEST_CONF" nova_api user_domain_name "$SERVICE_DOMAIN_NAME"
    iniset "$HA_GUEST_CONF" nova_api project_name "$SERVICE_PROJECT_NAME"
    iniset "$HA_GUEST_CONF" nova_api project_domain_name "$SERVICE_DOMAIN_NAME"
    iniset "$HA_GUEST_CONF" nova_api region_name "$REGION_NAME"
}

# The Keystone user of the recovery sink; it needs admin to see any server's
# flavor extra specs and to reboot or stop it (doc/source/recovery.rst).
function create_ha_guest_accounts {
    create_service_user "$HA_GUEST_SERVICE_USER" "admin"
}

# nova.conf: the driver on compute hosts, notifications everywhere Nova runs
# (the options come from etc/nova, shared with tox -e cloud).
function configure_nova_for_ha_guest {
    if is_service_enabled n-cpu; then
        if [[ "$VIRT_DRIVER" == "libvirt" ]]; then
            # Nova's libvirt driver plus the ha_guest channel (doc/source/nova.rst).
            _ha_guest_apply_fragment "$HA_GUEST_NOVA_COMPUTE_FRAGMENT" _ha_guest_nova_iniset
        else
            warn $LINENO "ha_guest needs VIRT_DRIVER=libvirt; leaving compute_driver alone"
        fi
    fi

    # Versioned notifications on every instance state change: Vitrage's
    # nova.instance datasource reads the versioned ones (its default), and
    # ha_guest's controller follows the members' states. Never switch a
    # format away: unversioned (Nova's default, which Ceilometer and others
    # read) becomes both.
    local format
    format=$(_ha_guest_notification_format)
    _ha_guest_apply_fragment "$HA_GUEST_NOVA_NOTIFICATIONS_FRAGMENT" _ha_guest_nova_iniset
    _ha_guest_nova_iniset notifications notification_format "$format"

    if is_ha_guest_vitrage; then
        # Nova's versioned notifications must also reach Vitrage's topic.
        local topics
        topics=$(iniget "$VITRAGE_CONF" datasources notification_topics)
        _ha_guest_ini_list_add "$NOVA_CONF" notifications versioned_notifications_topics \
            versioned_notifications "${topics:-vitrage_notifications}"
    fi
}

# vitrage.conf and the values file; the template is loaded once Vitrage runs.
function configure_vitrage_for_ha_guest {
    # Vitrage imports <path>.<type> for each datasource: add ours to both
    # lists, keeping the datasources Vitrage's plugin enabled.
    _ha_guest_ini_list_add "$VITRAGE_CONF" datasources types nova.host,nova.instance,nova.zone ha_guest
    _ha_guest_ini_list_add "$VITRAGE_CONF" datasources path vitrage.datasources ha_guest.vitrage.datasources

    # Without the values file every ha_guest alarm shows severity N/A.
    local values_dir
    values_dir=$(iniget "$VITRAGE_CONF" entity_graph datasources_values_dir)
    values_dir=${values_dir:-$VITRAGE_CONF_DIR/datasources_values}
    install -d "$values_dir"
    install -m 644 "$HA_GUEST_VITRAGE_VALUES" "$values_dir/"
    # [ha_guest] controller_exchange keeps its default, "ha_guest": the
    # controllers here keep their default [DEFAULT] control_exchange, ha_guest's
    # own exchange. Our notifications reach Vitrage's listener although they
    # are sent on that exchange: see doc/source/operations.rst.
}

# Vitrage keeps templates in its database, which its plugin recreates on
# every stack.sh, so the template is added on every run.
function load_vitrage_template_for_ha_guest {
    vitrage template add --path "$HA_GUEST_VITRAGE_TEMPLATE"
}


# Tempest
# -------

# Our guest image (tools/build-guest-image.py: a Debian kernel and an initramfs
# running ha-guest-agent) in Glance the way devstack puts cirros UEC: kernel,
# ramdisk and a tiny machine image pointing at both. Prints the image's id.
function _ha_guest_upload_guest_image {
    local folder kernel ramdisk disk
    folder=$(sudo "$HA_GUEST_BIN_DIR/python" "$HA_GUEST_DIR/tools/build-guest-image.py" --print-path | tail -n 1)
    kernel=$(openstack --os-cloud devstack-admin image create ha-guest-kernel --public --disk-format aki \
        --container-format aki --file "$folder/vmlinuz" -f value -c id)
    ramdisk=$(openstack --os-cloud devstack-admin image create ha-guest-ramdisk --public --disk-format ari \
        --container-format ari --file "$folder/initrd.img" -f value -c id)
    disk=$(mktemp)
    truncate -s 1M "$disk"
    openstack --os-cloud devstack-admin image create ha-guest --public --disk-format ami --container-format ami \
        --file "$disk" --property kernel_id="$kernel" --property ramdisk_id="$ramdisk" \
        --property os_command_line="$HA_GUEST_KERNEL_CMDLINE" -f value -c id
    rm -f "$disk"
}

# tempest.conf: the plugin's options from ha_guest.tempest.settings (the list
# tox -e cloud writes too). The scenarios drive the guest through its serial
# console (serial_pty), which needs tempest on this compute host as root.
function configure_tempest_for_ha_guest {
    local image_ref="" control=none vitrage=False
    if [[ "$HA_GUEST_TEMPEST_IMAGE" == "True" ]] && is_service_enabled g-api; then
        image_ref=$(_ha_guest_upload_guest_image)
    fi
    if is_ha_guest_compute; then
        control=serial_pty
    fi
    if is_ha_guest_vitrage; then
        vitrage=True
    fi
    local section option value
    while read -r section option value; do
        iniset "$TEMPEST_CONFIG" "$section" "$option" "$value"
    done < <("$HA_GUEST_BIN_DIR/python" -m ha_guest.tempest.settings --image-ref "$image_ref" \
        --guest-control "$control" --vitrage "$vitrage" --service-user "$HA_GUEST_SERVICE_USER" \
        --libvirt-uri "$HA_GUEST_LIBVIRT_URI")
}


# Start and stop
# --------------

# devstack's units (devstack@<service>.service) have no Restart= and
# KillMode=process; give ours what etc/systemd/ha-guest-*.service have: ready
# when serving (sd_notify), restarted after a crash, SIGTERM to the main
# process then the rest. Written before run_process, which reloads systemd.
function _ha_guest_unit_dropin {
    local service=$1
    local dir=${SYSTEMD_DIR:-/etc/systemd/system}/devstack@$service.service.d
    sudo install -d -m 755 "$dir"
    printf '%s\n' "[Service]" "Type=notify" "NotifyAccess=main" "Restart=on-failure" "RestartSec=2" \
        "KillMode=mixed" "TimeoutStopSec=30" | sudo tee "$dir/ha_guest.conf" >/dev/null
}

function start_ha_guest {
    # The controller first, so that the agent's first reports find it (they
    # would be retried anyway).
    if is_service_enabled ha-guest-controller; then
        _ha_guest_unit_dropin ha-guest-controller
        run_process ha-guest-controller "$HA_GUEST_BIN_DIR/ha-guest-controller --config-file $HA_GUEST_CONF"
    fi
    if is_ha_guest_compute; then
        # As its own unprivileged user, a member of QEMU's group (see
        # create_ha_guest_compute_user): it connects to the channel sockets QEMU
        # creates under /var/lib/libvirt/qemu, opens libvirt read-only and
        # changes nothing. SIGHUP (systemctl reload devstack@ha-guest-compute)
        # reloads its log level and mutable options.
        _ha_guest_unit_dropin ha-guest-compute
        run_process ha-guest-compute "$HA_GUEST_BIN_DIR/ha-guest-compute --config-file $HA_GUEST_CONF" "" \
            "$HA_GUEST_COMPUTE_USER"
    fi
}

function stop_ha_guest {
    local service
    for service in ha-guest-compute ha-guest-controller; do
        stop_process "$service"
    done
}

function cleanup_ha_guest {
    sudo rm -rf "$HA_GUEST_CONF_DIR" "$HA_GUEST_STATE_DIR"
}


# Main dispatcher
# ---------------

if is_ha_guest_needed; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing ha_guest"
        install_ha_guest

    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring ha_guest"
        configure_ha_guest
        # Accounts are made where Keystone runs, for controllers on any host.
        if is_service_enabled key; then
            create_ha_guest_accounts
        fi
        if is_service_enabled nova; then
            configure_nova_for_ha_guest
        fi
        if is_ha_guest_vitrage; then
            configure_vitrage_for_ha_guest
        fi

    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting ha_guest"
        start_ha_guest
        if is_ha_guest_vitrage; then
            load_vitrage_template_for_ha_guest
        fi
    fi

    if [[ "$1" == "stack" && "$2" == "test-config" ]] && is_service_enabled tempest; then
        echo_summary "Configuring tempest for ha_guest"
        configure_tempest_for_ha_guest
    fi

    if [[ "$1" == "unstack" ]]; then
        echo_summary "Stopping ha_guest"
        stop_ha_guest
    fi

    if [[ "$1" == "clean" ]]; then
        echo_summary "Cleaning ha_guest"
        cleanup_ha_guest
    fi
fi

# Restore xtrace
$_XTRACE_HA_GUEST
