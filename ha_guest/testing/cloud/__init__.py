"""A small real OpenStack on this machine for ``tox -e cloud`` (tests/cloud).

Keystone, Placement, Glance, Nova (api, conductor, scheduler, compute with
ha_guest's libvirt driver), Masakari, ha-guest-controller and ha-guest-compute
run as processes of the env's venv, on the local MariaDB and RabbitMQ, with
databases and a vhost of their own. ``settings`` reads the option fragments
under etc/ that the devstack plugin shares, ``configs`` writes the services'
files, ``processes`` runs and stops them, ``bootstrap`` fills the databases and
the Keystone catalog, and ``controller`` puts it all together.
"""
