"""The extra specs and image properties that turn ha_guest on, without Nova."""

from __future__ import annotations

import testtools

from ha_guest.nova import specs


class TestParseBool(testtools.TestCase):
    """Booleans parse like oslo's strict bool_from_string, which nova-api validates with."""

    def test_true_words(self) -> None:
        for value in ("1", "t", "true", "on", "y", "yes", "TRUE", "Yes", " yes ", "On", True):
            self.assertIs(True, specs.parse_bool("k", value), value)

    def test_false_words(self) -> None:
        for value in ("0", "f", "false", "off", "n", "no", "FALSE", "No", " no", "OFF", False):
            self.assertIs(False, specs.parse_bool("k", value), value)

    def test_rejects_other_values(self) -> None:
        for value in ("", "2", "enabled", "truee", "nope", "-1", None):
            exc = self.assertRaises(specs.InvalidSpec, specs.parse_bool, "ha_guest:heartbeat", value)
            self.assertEqual("ha_guest:heartbeat", exc.key)
            self.assertIn("ha_guest:heartbeat", str(exc))

    def test_invalid_spec_is_value_error(self) -> None:
        self.assertTrue(issubclass(specs.InvalidSpec, ValueError))


class TestFeatures(testtools.TestCase):
    """Flavor first, image when the flavor is silent, off by default."""

    def test_nothing_asked(self) -> None:
        features = specs.features({}, {})
        self.assertFalse(features.heartbeat)
        self.assertFalse(features.server_group_messaging)
        self.assertFalse(features.needs_channel)

    def test_other_extra_specs_ignored(self) -> None:
        self.assertFalse(specs.features({"hw:cpu_policy": "dedicated", "ha_guest:recovery": "reboot"}).needs_channel)

    def test_flavor_heartbeat(self) -> None:
        features = specs.features({"ha_guest:heartbeat": "true"})
        self.assertTrue(features.heartbeat)
        self.assertFalse(features.server_group_messaging)
        self.assertTrue(features.needs_channel)

    def test_flavor_sgm_only(self) -> None:
        features = specs.features({"ha_guest:server_group_messaging": "yes"})
        self.assertFalse(features.heartbeat)
        self.assertTrue(features.needs_channel)

    def test_flavor_both_false(self) -> None:
        features = specs.features({"ha_guest:heartbeat": "false", "ha_guest:server_group_messaging": "0"})
        self.assertFalse(features.needs_channel)

    def test_image_when_flavor_silent(self) -> None:
        self.assertTrue(specs.features({}, {"ha_guest_heartbeat": "yes"}).heartbeat)
        self.assertTrue(specs.features({}, {"ha_guest_server_group_messaging": "True"}).server_group_messaging)

    def test_flavor_false_beats_image_true(self) -> None:
        features = specs.features({"ha_guest:heartbeat": "false"}, {"ha_guest_heartbeat": "true"})
        self.assertFalse(features.heartbeat)
        self.assertFalse(features.needs_channel)

    def test_flavor_true_beats_image_false(self) -> None:
        self.assertTrue(specs.features({"ha_guest:heartbeat": "true"}, {"ha_guest_heartbeat": "false"}).heartbeat)

    def test_precedence_is_per_feature(self) -> None:
        features = specs.features({"ha_guest:heartbeat": "false"}, {"ha_guest_server_group_messaging": "yes"})
        self.assertFalse(features.heartbeat)
        self.assertTrue(features.server_group_messaging)
        self.assertTrue(features.needs_channel)

    def test_invalid_flavor_value_raises(self) -> None:
        exc = self.assertRaises(specs.InvalidSpec, specs.features, {"ha_guest:heartbeat": "maybe"})
        self.assertEqual("ha_guest:heartbeat", exc.key)

    def test_invalid_image_value_raises(self) -> None:
        exc = self.assertRaises(specs.InvalidSpec, specs.features, {}, {"ha_guest_heartbeat": "maybe"})
        self.assertEqual("ha_guest_heartbeat", exc.key)

    def test_invalid_image_value_ignored_when_flavor_decides(self) -> None:
        self.assertTrue(specs.features({"ha_guest:heartbeat": "1"}, {"ha_guest_heartbeat": "maybe"}).heartbeat)


class TestRecovery(testtools.TestCase):
    """Only the flavor chooses recovery."""

    def test_default_none(self) -> None:
        self.assertEqual("none", specs.recovery_action({}))

    def test_each_action(self) -> None:
        for action in ("none", "reboot", "stop", "masakari"):
            self.assertEqual(action, specs.recovery_action({"ha_guest:recovery": action}))

    def test_rejects_unknown_and_case(self) -> None:
        for value in ("Reboot", "evacuate", "", "reboot "):
            self.assertRaises(specs.InvalidSpec, specs.recovery_action, {"ha_guest:recovery": value})

    def test_actions_constant(self) -> None:
        self.assertEqual(("none", "reboot", "stop", "masakari"), specs.RECOVERY_ACTIONS)


class TestImagePropertiesFromSystemMetadata(testtools.TestCase):
    """Nova keeps image properties in system metadata as image_<name>."""

    def test_picks_ours(self) -> None:
        sysmeta = {
            "image_ha_guest_heartbeat": "yes",
            "image_ha_guest_server_group_messaging": "no",
            "image_hw_qemu_guest_agent": "yes",
            "image_base_image_ref": "abc",
            "ha_guest_heartbeat": "ignored: not an image property",
        }
        self.assertEqual(
            {"ha_guest_heartbeat": "yes", "ha_guest_server_group_messaging": "no"},
            specs.image_properties_from_system_metadata(sysmeta),
        )

    def test_empty(self) -> None:
        self.assertEqual({}, specs.image_properties_from_system_metadata({}))

    def test_none_values_skipped(self) -> None:
        self.assertEqual({}, specs.image_properties_from_system_metadata({"image_ha_guest_heartbeat": None}))
