"""Options of the compute agent (ha-guest-compute), group [compute]."""

from __future__ import annotations

from oslo_config import cfg

from ha_guest.protocol import constants, limits
from ha_guest.protocol.heartbeat import MAX_MISS_THRESHOLD

GROUP = "compute"

OPTS = [
    cfg.StrOpt(
        "discovery_driver", default="libvirt",
        help="How the agent finds the instances to watch: a driver of the ha_guest.compute.discovery "
             "namespace. 'libvirt' follows the domains of the local hypervisor; 'directory' watches "
             "<instance-uuid>.sock files in directory_path (tests and the demo)."),
    cfg.StrOpt(
        "channel_name", default=constants.CHANNEL_NAME,
        help="Target name of the virtio-serial channel in the domain XML (libvirt driver)."),
    cfg.StrOpt(
        "directory_path", default="/var/lib/ha_guest/channels",
        help="Folder watched by the directory driver: <instance-uuid>.sock is a channel's host socket, "
             "<instance-uuid>.suspended marks a paused or migrating instance, and <instance-uuid>.features "
             "holds the instance's features as JSON {\"heartbeat\": true, \"server_group_messaging\": false} "
             "(at most 4096 bytes; without it, or when it is unusable, the channel is heartbeat-only)."),
    cfg.FloatOpt(
        "directory_poll_s", default=0.2, min=0.05, max=10.0,
        help="How often the directory driver looks at directory_path, in seconds."),
    cfg.StrOpt(
        "libvirt_uri", default="qemu:///system",
        help="libvirt connection URI of the libvirt driver (opened read-only)."),
    cfg.IntOpt(
        "tick_ms", default=10, min=1, max=100,
        help="Period of the agent's single scheduler tick in milliseconds: challenges are sent and "
             "deadlines checked at this granularity, so it adds at most this much to detection time."),
    cfg.IntOpt(
        "miss_threshold", default=1, min=1, max=MAX_MISS_THRESHOLD,
        help="Consecutive unanswered challenges that make a fault. With 1, a guest that stops "
             "answering is reported within two intervals."),
    cfg.IntOpt(
        "min_interval_ms", default=limits.MIN_INTERVAL_MS, min=limits.MIN_INTERVAL_MS, max=limits.MAX_INTERVAL_MS,
        help="Shortest heartbeat interval granted to a guest; shorter requests are raised to it."),
    cfg.IntOpt(
        "max_interval_ms", default=limits.MAX_INTERVAL_MS, min=limits.MIN_INTERVAL_MS, max=limits.MAX_INTERVAL_MS,
        help="Longest heartbeat interval granted to a guest; longer requests are lowered to it."),
    cfg.IntOpt(
        "state_report_interval_s", default=30, min=1, max=3600, mutable=True,
        help="How often the agent sends the controller the state of every monitored instance, in "
             "seconds; the controller uses it to resynchronise its fault registry. Reloaded on SIGHUP "
             "(from the next report on)."),
    cfg.FloatOpt(
        "reconnect_min_s", default=0.1, min=0.01, max=60.0,
        help="First delay before reconnecting to a channel socket that dropped or refused, in seconds; "
             "it doubles on each failure up to reconnect_max_s."),
    cfg.FloatOpt(
        "reconnect_max_s", default=2.0, min=0.01, max=300.0,
        help="Longest delay between reconnection attempts to a channel socket, in seconds."),
    cfg.FloatOpt(
        "channel_loss_grace_s", default=None, min=0.0, max=60.0,
        help="After a channel socket drops, misses are not counted for this long, in seconds, so that "
             "discovery can first report the domain stopped, paused or migrating. Unset (the default): the "
             "discovery driver's own event latency plus 0.1 s (libvirt: 5 s, as its lifecycle event for a "
             "destroyed domain comes only once QEMU is reaped, measured at up to 1.8 s after the socket's end; "
             "directory: directory_poll_s plus the time a poll takes). A domain still running after that is "
             "watched as before, so a QEMU that vanished is a fault this much later. A connected but hung "
             "guest is not affected. A channel that discovery removes ends monitoring at once, and an open "
             "incident of it is reported ended (an exit) without waiting for a state report."),
    cfg.FloatOpt(
        "hello_retry_s", default=1.0, min=0.1, max=60.0,
        help="Re-send hello this often until the guest acknowledges it, in seconds."),
    cfg.IntOpt(
        "report_queue_size", default=10000, min=10, max=1000000,
        help="Reports (faults, recoveries, exits, state reports) waiting for the controller. When full, "
             "state reports are dropped first; faults, recoveries and exits are kept."),
    cfg.FloatOpt(
        "restart_grace_s", default=3.0, min=0.0, max=600.0,
        help="After a restart of this agent, how long a guest that was registered before gets to answer "
             "the new session's hello before it is challenged again. It must exceed the guest agent's "
             "reconnection backoff (2 s plus jitter for the reference agent), or a restart of this agent "
             "raises false faults; a guest still hung after it is reported again under its open incident."),
    cfg.StrOpt(
        "state_file", default="/var/lib/ha_guest/compute-state.json",
        help="Where the agent keeps the registered instances and their open faults, so that a restart "
             "neither raises false faults nor loses an open one. The previous generation is kept beside it as "
             "<state_file>.prev and read when the file cannot be; when neither can, the agent asks the "
             "controllers for this host's open faults. Empty: keep nothing."),
    cfg.FloatOpt(
        "state_file_min_interval_s", default=0.2, min=0.01, max=60.0,
        help="Changes that no report waits for (registrations, an incident acknowledged by a controller) are "
             "written to the state file at most once per this many seconds, whatever the guests do; changes in "
             "between are gathered into the next write, and a change that alters nothing the file keeps (a guest "
             "sending init again, a damped flap) writes nothing. A new incident, a recovery or an exit is "
             "written at once, before its report leaves for the controller (everything that happens during "
             "that write rides the next one)."),
    cfg.FloatOpt(
        "flap_hold_down_s", default=1.0, min=0.0, max=600.0,
        help="Flap damping: how long a guest must stay steadily healthy (no fault) before its incident is "
             "reported recovered, in seconds, for a guest that has not flapped lately. A fault within that time "
             "is part of the same incident, not a new one. It doubles with every fault of the guest (its flap "
             "penalty, which halves every flap_half_life_s) up to flap_max_hold_down_s. The first fault is "
             "always reported at once. 0: no damping, every recovery is reported at once."),
    cfg.FloatOpt(
        "flap_max_hold_down_s", default=30.0, min=0.0, max=3600.0,
        help="Flap damping: the longest hold-down, in seconds: a guest that has been flapping is reported "
             "recovered after at most this long of steady health."),
    cfg.FloatOpt(
        "flap_half_life_s", default=60.0, min=1.0, max=86400.0,
        help="Flap damping: the half-life of a guest's flap penalty, in seconds; a guest whose faults are "
             "further apart than a few half-lives gets the shortest hold-down, flap_hold_down_s."),
    cfg.FloatOpt(
        "guest_frame_rate", default=limits.GUEST_FRAME_RATE, min=1.0, max=10000.0,
        help="Lines per second a guest may send on its channel (sustained), frames and blank lines alike; "
             "they are counted in each read before it is parsed. A read beyond this budget (or "
             "guest_byte_rate) is dropped unparsed, answered with error rate_limited, and the channel is not "
             "read for guest_pause_s. The default leaves a healthy guest (10 heartbeat answers and up to 10 "
             "broadcasts a second) more than twice what it needs."),
    cfg.IntOpt(
        "guest_frame_burst", default=limits.GUEST_FRAME_BURST, min=1, max=100000,
        help="Lines a guest may send at once before guest_frame_rate applies."),
    cfg.IntOpt(
        "guest_byte_rate", default=65536, min=1024, max=16777216,
        help="Bytes per second a guest may send on its channel (sustained), whatever they hold: every read is "
             "charged before it is parsed. The default is 1.5 times a healthy guest's most: 10 broadcasts a "
             "second of about 4.2 KB and 10 heartbeat answers of about 150 bytes."),
    cfg.IntOpt(
        # At least one full read of the agent's buffer (two frames of the largest size), or such a read never fits.
        "guest_byte_burst", default=131072, min=2 * limits.MAX_FRAME_BYTES + 2, max=67108864,
        help="Bytes a guest may send at once before guest_byte_rate applies; the default holds a burst of 20 "
             "broadcasts (the protocol's broadcast burst) with room to spare."),
    cfg.FloatOpt(
        "guest_pause_s", default=0.1, min=0.01, max=10.0,
        help="How long the agent stops reading a guest's channel once the guest is over its budget, in "
             "seconds; meanwhile the kernel and QEMU hold its bytes. While over budget a guest costs the agent "
             "at most one read of 16 KiB, dropped unparsed, per pause."),
    cfg.IntOpt(
        "sgm_queue_size", default=10000, min=10, max=1000000,
        help="Server group messaging: guest broadcasts waiting to be handed to a controller. When full, "
             "a new broadcast is answered with nack unavailable."),
    cfg.FloatOpt(
        "sgm_timeout_s", default=2.5, min=0.1, max=60.0,
        help="Server group messaging: how long a batch of guest broadcasts, or a guest's status_request, "
             "waits for a controller's answer, in seconds; past it the guests get nack unavailable (a "
             "broadcast answered so may still have been delivered)."),
    cfg.IntOpt(
        "sgm_status_workers", default=4, min=1, max=64,
        help="Server group messaging: status requests this agent has in flight to the controllers at "
             "once; more wait in a bounded queue (full: nack unavailable)."),
    cfg.FloatOpt(
        "sgm_batch_window_ms", default=10.0, min=0.0, max=100.0,
        help="Server group messaging: when more broadcasts are waiting after a controller took a batch, wait "
             "this long, in milliseconds, before handing it the next one, so that under load each call and each "
             "of the controller's casts carries more broadcasts (fewer messages through the broker, less CPU, "
             "lower latency at high rates). Batches are handed over one at a time, which keeps each sender's "
             "order. An idle agent sends a broadcast at once; 0 never waits."),
    cfg.IntOpt(
        "write_buffer_limit", default=65536, min=4096, max=16777216,
        help="Bytes the agent may hold unsent for one channel; a guest that stops reading beyond "
             "it has its connection dropped and re-opened (its misses still count)."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [compute] options on ``conf``."""
    conf.register_opts(OPTS, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Return the [compute] options for oslo-config-generator."""
    return [(GROUP, OPTS)]
