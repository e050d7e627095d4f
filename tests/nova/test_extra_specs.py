"""Our extra-spec validators, loaded through the entry point and run by Nova's validation code."""

from __future__ import annotations

import importlib.metadata
from unittest import mock

from nova import exception, test
from nova.api.openstack.compute import flavors_extraspecs
from nova.api.validation.extra_specs import base as validator_base
from nova.api.validation.extra_specs import validators
from nova.tests.unit.api.openstack import fakes

from ha_guest.nova import extra_specs, specs

GROUP = "nova.api.extra_spec_validators"
OURS = {"ha_guest:heartbeat", "ha_guest:server_group_messaging", "ha_guest:recovery"}

GOOD = (
    [
        ("ha_guest:heartbeat", value)
        for value in ("true", "false", "True", "FALSE", "yes", "no", "1", "0", "on", "off", "y", "n", "t", "f")
    ]
    + [("ha_guest:server_group_messaging", value) for value in ("true", "false", "Yes", "0")]
    + [("ha_guest:recovery", value) for value in ("none", "reboot", "stop", "masakari")]
)

BAD = [
    ("ha_guest:heartbeat", "maybe"),
    ("ha_guest:heartbeat", ""),
    ("ha_guest:heartbeat", "2"),
    ("ha_guest:heartbeat", "enabled"),
    ("ha_guest:server_group_messaging", "sometimes"),
    ("ha_guest:recovery", "evacuate"),
    ("ha_guest:recovery", "Reboot"),
    ("ha_guest:recovery", ""),
    ("ha_guest:recovery", "true"),
    ("ha_guest:bogus", "true"),
    ("ha_guest:heartbeat_interval_ms", "1000"),
]


class TestEntryPoint(test.NoDBTestCase):
    """nova-api finds our module through the entry point group it loads."""

    def test_entry_point_installed(self) -> None:
        eps = {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}
        self.assertIn("ha_guest", eps, "ha_guest is not installed with its entry points")
        self.assertEqual("ha_guest.nova.extra_specs", eps["ha_guest"].value)
        module = eps["ha_guest"].load()
        self.assertIs(extra_specs, module)
        registered = module.register()
        self.assertEqual(OURS, {v.name for v in registered})
        for validator in registered:
            self.assertIsInstance(validator, validator_base.ExtraSpecValidator)
            self.assertGreater(len(validator.description), 40, validator.name)

    def test_loaded_by_nova(self) -> None:
        # validators.load_validators() ran at import through stevedore, as in nova-api.
        self.assertTrue(OURS <= set(validators.VALIDATORS))
        self.assertIn("ha_guest", validators.NAMESPACES)

    def test_enum_matches_specs(self) -> None:
        self.assertEqual(list(specs.RECOVERY_ACTIONS), validators.VALIDATORS["ha_guest:recovery"].value["enum"])


class TestValidate(test.NoDBTestCase):
    """nova.api.validation.extra_specs.validators.validate, the function nova-api calls."""

    def test_good_values(self) -> None:
        for name, value in GOOD:
            validators.validate(name, value)

    def test_bad_values(self) -> None:
        for name, value in BAD:
            exc = self.assertRaises(exception.ValidationError, validators.validate, name, value)
            self.assertEqual(400, exc.code, (name, value))

    def test_unknown_key_message(self) -> None:
        exc = self.assertRaises(exception.ValidationError, validators.validate, "ha_guest:bogus", "1")
        self.assertIn("does not appear to be a valid extra spec", str(exc))

    def test_other_namespaces_untouched(self) -> None:
        validators.validate("hw:cpu_policy", "dedicated")
        validators.validate("mycompany:anything", "goes")

    def test_parser_agrees_with_nova(self) -> None:
        # What nova-api accepts, the driver parses the same way; what it refuses, the driver refuses.
        for value in ("true", "YES", " on ", "0", "Off", "n", "maybe", "", "2", "yess"):
            try:
                validators.validate("ha_guest:heartbeat", value)
                accepted = True
            except exception.ValidationError:
                accepted = False
            try:
                specs.parse_bool("ha_guest:heartbeat", value)
                parsed = True
            except specs.InvalidSpec:
                parsed = False
            self.assertEqual(accepted, parsed, repr(value))


class TestFlavorExtraSpecsAPI(test.NoDBTestCase):
    """The flavor extra specs API controller, as nova-api runs it at a given microversion."""

    def setUp(self) -> None:
        super().setUp()
        self.controller = flavors_extraspecs.FlavorExtraSpecsController()
        self.flavor = mock.Mock(extra_specs={})
        self.stub_out("nova.api.openstack.common.get_flavor", lambda context, flavor_id: self.flavor)

    def _create(self, version: str, extra: dict[str, str]) -> dict:
        req = fakes.HTTPRequest.blank("/v2/fake/flavors/1/os-extra_specs", use_admin_context=True, version=version)
        return self.controller.create(req, "1", body={"extra_specs": extra})

    def test_create_good(self) -> None:
        body = {"ha_guest:heartbeat": "true", "ha_guest:recovery": "reboot"}
        self.assertEqual({"extra_specs": body}, self._create("2.86", body))
        self.flavor.save.assert_called_once_with()
        self.assertEqual(body, self.flavor.extra_specs)

    def test_create_bad_rejected(self) -> None:
        for name, value in BAD:
            exc = self.assertRaises(exception.ValidationError, self._create, "2.86", {name: value})
            self.assertEqual(400, exc.code)
        self.flavor.save.assert_not_called()

    def test_before_2_86_not_validated(self) -> None:
        # Documented Nova behaviour: older microversions store anything, which is
        # why the driver checks values again and refuses to boot with a bad one.
        self._create("2.85", {"ha_guest:heartbeat": "maybe"})
        self.flavor.save.assert_called_once_with()
