"""nova-api checks ha_guest's flavor extra specs with our validators (microversion 2.86 and later)."""

from __future__ import annotations

from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc

from ha_guest.tempest.tests import base


class ExtraSpecsTest(base.HAGuestBaseTest):
    """Good values are stored, bad values and unknown ``ha_guest:`` keys are refused with 400."""

    @decorators.idempotent_id('3d0b8f5e-5d6c-4d3a-9a51-6b2f0b0d8a11')
    def test_valid_specs_accepted(self) -> None:
        flavor = self.create_ha_flavor()
        good = {
            base.HEARTBEAT: 'true',
            base.SERVER_GROUP_MESSAGING: 'false',
            base.RECOVERY: 'reboot',
        }
        self.admin_flavors_client.set_flavor_extra_spec(flavor['id'], **good)
        stored = self.admin_flavors_client.list_flavor_extra_specs(flavor['id'])['extra_specs']
        self.assertEqual(good, {key: stored[key] for key in good})
        # Every recovery action and the other spellings of a boolean Nova's validator takes.
        for value in ('none', 'stop', 'masakari'):
            self.admin_flavors_client.update_flavor_extra_spec(flavor['id'], base.RECOVERY,
                                                               **{base.RECOVERY: value})
        for value in ('yes', 'off', '1', 'False'):
            self.admin_flavors_client.update_flavor_extra_spec(flavor['id'], base.HEARTBEAT,
                                                               **{base.HEARTBEAT: value})
        stored = self.admin_flavors_client.list_flavor_extra_specs(flavor['id'])['extra_specs']
        self.assertEqual('masakari', stored[base.RECOVERY])
        self.assertEqual('False', stored[base.HEARTBEAT])

    @decorators.attr(type=['negative'])
    @decorators.idempotent_id('0f4a7c52-8e0c-4f8e-b2a1-1c6d5e2f9b21')
    def test_invalid_specs_refused(self) -> None:
        flavor = self.create_ha_flavor()
        bad = [
            {base.HEARTBEAT: 'maybe'},
            {base.SERVER_GROUP_MESSAGING: '2'},
            {base.RECOVERY: 'explode'},
            {base.RECOVERY: 'REBOOT'},
            # Our namespace is registered, so a key Nova has no validator for is an error.
            {'ha_guest:interval_ms': '500'},
            {'ha_guest:hearbeat': 'true'},
        ]
        for specs in bad:
            exc = self.assertRaises(lib_exc.BadRequest, self.admin_flavors_client.set_flavor_extra_spec,
                                    flavor['id'], **specs)
            # Refused by nova-api's extra spec validation, not for some other reason.
            self.assertIn('Validation failed', str(exc), specs)
        stored = self.admin_flavors_client.list_flavor_extra_specs(flavor['id'])['extra_specs']
        self.assertEqual({}, {key: value for key, value in stored.items() if key.startswith('ha_guest:')})

    @decorators.attr(type=['negative'])
    @decorators.idempotent_id('8a1e2b9c-71d4-4f0e-9c3b-2e5f6a7b8c31')
    def test_invalid_update_keeps_value(self) -> None:
        flavor = self.create_ha_flavor(**{base.RECOVERY: 'stop'})
        self.assertRaises(lib_exc.BadRequest, self.admin_flavors_client.update_flavor_extra_spec,
                          flavor['id'], base.RECOVERY, **{base.RECOVERY: 'sometimes'})
        stored = self.admin_flavors_client.show_flavor_extra_spec(flavor['id'], base.RECOVERY)
        self.assertEqual({base.RECOVERY: 'stop'}, dict(stored))
