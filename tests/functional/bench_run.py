"""Running a benchmark small from a functional test: its process, its output attached, its JSON read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import fixtures
import testtools

TIMEOUT = 90


class BenchTestCase(testtools.TestCase):
    """Runs ``python -m ha_guest.testing.bench`` with the test's arguments."""

    def run_bench(self, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        """Run the benchmark to its end; fail unless it exits 0; return the process and its JSON figures."""
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'result.json')
        proc = subprocess.run([sys.executable, '-m', 'ha_guest.testing.bench', *args, '--json', path],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
                              env=dict(os.environ, PYTHONUNBUFFERED='1'))
        self.addDetail('stdout', testtools.content.text_content(proc.stdout))
        self.addDetail('stderr', testtools.content.text_content(proc.stderr[-5000:]))
        self.assertEqual(0, proc.returncode, proc.stderr[-3000:])
        with open(path, encoding='utf-8') as handle:
            return proc, dict(json.load(handle))
