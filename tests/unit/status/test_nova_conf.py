"""Reading Nova's notification settings from nova.conf files."""

from __future__ import annotations

import os

import fixtures
import testtools

from ha_guest.status import nova_conf


class TestNovaConf(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.tmp, name)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(text)
        return path

    def test_repeated_keys_keep_every_value_and_defaults_fill_in(self) -> None:
        path = self.write('nova.conf', '# comment\n[oslo_messaging_notifications]\ndriver = log\n'
                                       'driver = messagingv2\n[notifications]\n; x\n'
                                       'versioned_notifications_topics = a, b\n')
        settings = nova_conf.read([path])
        self.assertEqual(['log', 'messagingv2'], settings.listed('oslo_messaging_notifications', 'driver'))
        self.assertEqual(['a', 'b'], settings.listed('notifications', 'versioned_notifications_topics'))
        self.assertEqual('unversioned', settings.first('notifications', 'notification_format'))
        self.assertEqual('nova', settings.first('DEFAULT', 'control_exchange'))

    def test_a_later_file_wins(self) -> None:
        first = self.write('nova.conf', '[notifications]\nnotification_format = unversioned\n')
        second = self.write('nova-compute.conf', '[notifications]\nnotification_format = both\n')
        self.assertEqual('both', nova_conf.read([first, second]).first('notifications', 'notification_format'))
        self.assertEqual([first, second], nova_conf.read([first, second]).files)

    def test_oversized_file_refused(self) -> None:
        path = self.write('huge.conf', '#' * (nova_conf.MAX_BYTES + 1))
        self.assertRaisesRegex(ValueError, 'larger than', nova_conf.read, [path])

    def test_missing_file_is_an_oserror(self) -> None:
        self.assertRaises(OSError, nova_conf.read, [os.path.join(self.tmp, 'none.conf')])
