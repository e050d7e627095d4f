"""Version negotiation: the guest picks the highest version in both ranges."""

from __future__ import annotations

import unittest

from ha_guest.protocol import errors, negotiate, versioning


class TestNegotiate(unittest.TestCase):
    """Overlapping ranges give their highest common version; disjoint ones fail."""

    def test_current_versions(self) -> None:
        self.assertEqual(1, negotiate(versioning.MIN_VERSION, versioning.MAX_VERSION))
        self.assertEqual(1, versioning.BASE_VERSION)

    def test_overlap(self) -> None:
        self.assertEqual(3, negotiate(1, 3, 2, 5))
        self.assertEqual(3, negotiate(2, 5, 1, 3))
        self.assertEqual(4, negotiate(4, 4, 1, 9))
        self.assertEqual(2, negotiate(1, 2, 2, 2))

    def test_newer_host_offer(self) -> None:
        self.assertEqual(1, negotiate(1, 7))

    def test_no_overlap(self) -> None:
        for offer in ((2, 3), (5, 9)):
            with self.assertRaises(errors.ProtocolError) as ctx:
                negotiate(*offer)
            self.assertEqual(errors.UNSUPPORTED_VERSION, ctx.exception.code)
        with self.assertRaises(errors.ProtocolError):
            negotiate(1, 2, 3, 4)

    def test_is_supported(self) -> None:
        self.assertTrue(versioning.is_supported(1))
        self.assertFalse(versioning.is_supported(0))
        self.assertFalse(versioning.is_supported(2))
        self.assertTrue(versioning.is_supported(2, 1, 2))
