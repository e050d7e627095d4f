# Copyright 2025 The ha_guest Authors
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

import os

import setuptools
from setuptools.command import build_py

# nova-compute imports [DEFAULT] compute_driver as nova.virt.<value> and
# nothing else. A file under site-packages/nova/ would shadow an editable Nova
# (devstack), so the wheel carries a .pth file at its top level instead: at
# interpreter start it installs a finder that resolves exactly
# nova.virt.ha_guest (ha_guest/nova/virt_finder.py, doc/source/nova.rst).
NOVA_PTH_SOURCE = os.path.join('ha_guest', 'nova', 'ha_guest_nova_driver.pth')


class BuildPy(build_py.build_py):
    """build_py that also places the driver finder's .pth at the wheel's top level."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            # setuptools' editable wheels carry no top-level file of ours: an
            # editable ha_guest cannot name the driver (doc/source/nova.rst).
            return
        self.copy_file(NOVA_PTH_SOURCE, os.path.join(self.build_lib, os.path.basename(NOVA_PTH_SOURCE)))


class Distribution(setuptools.Distribution):
    """pbr replaces cmdclass with its own from setup.cfg; add build_py after it."""

    def finalize_options(self):
        super().finalize_options()
        self.cmdclass['build_py'] = BuildPy


setuptools.setup(
    setup_requires=['pbr>=5.8'],
    distclass=Distribution,
    pbr=True)
