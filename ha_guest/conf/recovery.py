"""Options of the recovery fault sinks ([recovery]) and of their OpenStack API client ([nova_api])."""

from __future__ import annotations

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

GROUP = 'recovery'
NOVA_API_GROUP = 'nova_api'

#: keystoneauth's own option, used here as each request's read timeout; its default (none) would wait for ever.
READ_TIMEOUT_DEFAULT = 5
#: The auth plugin whose options the sample config shows; keystoneauth registers a plugin's options
#: only once [nova_api] auth_type names it, so these are listed but not registered up front.
SAMPLE_AUTH_PLUGIN = 'password'

group = cfg.OptGroup(
    GROUP, title='Recovery actions',
    help='The "recovery" fault sink (hard reboot or stop through the Nova API) and the "masakari" fault sink '
         '(a VM notification to Masakari). Each acts only for instances whose flavor has the extra spec '
         'ha_guest:recovery set to its action, once per incident. Enable them in [controller] fault_sinks.')

nova_api_group = cfg.OptGroup(
    NOVA_API_GROUP, title='OpenStack API client of the recovery sinks',
    help='Credentials (keystoneauth), endpoint selection and HTTP timeouts the controller uses to call Nova and '
         'Masakari. The user needs the admin role (or a policy that lets it show any server, see its flavor\'s '
         'extra specs, reboot and stop it, and create Masakari notifications).')

OPTS: list[cfg.Opt] = [
    cfg.BoolOpt(
        'enabled',
        default=True,
        help='Master switch of the recovery and masakari sinks. False: they log what they would have done and '
             'do nothing (for Nova or Masakari maintenance, without restarting with other sinks). The sinks '
             'themselves are off until named in [controller] fault_sinks, and act only for flavors with '
             'ha_guest:recovery, so true is safe as default.',
    ),
    cfg.FloatOpt(
        'action_deadline_s',
        default=10.0,
        min=0.1,
        mutable=True,
        help='An action not issued within this many seconds of the fault\'s acceptance by a controller (when '
             'its recovery intent was published; a redelivered intent keeps that time) is not issued at all '
             '(logged as failed): a late reboot may hit a guest that has recovered or been repaired by hand. '
             'Each HTTP request is bounded by [nova_api] connect_timeout and timeout as well. '
             'Reloaded on SIGHUP.',
    ),
    cfg.FloatOpt(
        'policy_cache_s',
        default=60.0,
        min=0.0,
        help='Seconds an instance\'s recovery policy (its flavor\'s ha_guest:recovery, read from Nova) is '
             'remembered, so that a flapping guest does not cost a Nova lookup per fault. 0: look it up for '
             'every fault. Nova keeps a copy of the flavor per instance: a changed extra spec reaches an '
             'existing instance only by resize.',
    ),
    cfg.IntOpt(
        'workers',
        default=4,
        min=1,
        max=64,
        help='Recovery actions each sink carries out at the same time (threads); one slow Nova call does not '
             'hold up the faults of other instances.',
    ),
    cfg.IntOpt(
        'queue_size',
        default=1000,
        min=1,
        help='Faults waiting for a worker, per sink. When full, a new fault gets no action and an error is '
             'logged.',
    ),
    cfg.StrOpt(
        'intent_topic',
        default='ha_guest_recovery_intents',
        help='Notification topic of the recovery intents. A controller with the recovery or masakari sink '
             'publishes one intent per accepted fault report (or batch) before it answers the compute agent, '
             'and every such controller consumes the queue <intent_topic>.info (the broker hands each intent to '
             'one controller, and hands it to another if that one dies before it acknowledged it, which it does '
             'once the actions are decided). Every controller of a deployment must use the same topic; keep it '
             'apart from topics other services consume.',
    ),
    cfg.FloatOpt(
        'unknown_incident_wait_s',
        default=3.0,
        min=0.0,
        help='Seconds an intent for an incident this controller does not know (a controller just started, or a '
             'peer\'s sync still on its way) waits for it to become known: from the peers, or from a state '
             'report the controller asks the incident\'s compute host for. An incident known to have ended gets '
             'no action; one still unknown after the wait is acted on (its fault report was accepted and nothing '
             'says it ended).',
    ),
]

NOVA_API_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        'region_name',
        help='Region of the Nova and Masakari endpoints in the Keystone catalog. Unset: the only one.',
    ),
    cfg.ListOpt(
        'valid_interfaces',
        default=['internal', 'public'],
        help='Endpoint interfaces to use, in order of preference.',
    ),
    cfg.FloatOpt(
        'connect_timeout',
        default=2.0,
        min=0.1,
        help='Seconds to wait for a TCP connection to Keystone, Nova or Masakari. The read timeout of each '
             'request is this group\'s timeout option.',
    ),
]


def _session_opts() -> list[cfg.Opt]:
    # Fresh copies on every call (keystoneauth builds new Opt objects), so setting the default here is local.
    opts = ks_loading.get_session_conf_options()
    for opt in opts:
        if opt.dest == 'timeout':
            opt.default = READ_TIMEOUT_DEFAULT
            opt.help = ('Seconds to wait for each answer of Keystone, Nova or Masakari (the read timeout; '
                        'keystoneauth\'s option, given a default here).')
    return opts


def auth_plugin_opts() -> list[cfg.Opt]:
    """Return the [nova_api] options keystoneauth registers itself when it loads the auth plugin."""
    return ks_loading.get_auth_plugin_conf_options(SAMPLE_AUTH_PLUGIN)


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [recovery] and [nova_api] options on ``conf``."""
    # Fresh OptGroup objects: oslo.config copies a registered group shallowly, so every ConfigOpts given the
    # same object shares its options, and keystoneauth adds the auth plugin's (some required) to [nova_api].
    for template, opts in ((group, OPTS), (nova_api_group, NOVA_API_OPTS)):
        conf.register_group(cfg.OptGroup(template.name, title=template.title, help=template.help))
        conf.register_opts(opts, group=template.name)
    ks_loading.register_session_conf_options(conf, NOVA_API_GROUP)
    ks_loading.register_auth_conf_options(conf, NOVA_API_GROUP)
    conf.set_default('timeout', READ_TIMEOUT_DEFAULT, group=NOVA_API_GROUP)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    """Return this module's options by group, for the sample config (with the password plugin's auth options)."""
    return {
        group: OPTS,
        nova_api_group: (NOVA_API_OPTS + _session_opts() + ks_loading.get_auth_common_conf_options()
                         + auth_plugin_opts()),
    }
