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
# nothing else, so the wheel also carries our one-line re-export inside Nova's
# package folder: only that file, never a nova/__init__.py or
# nova/virt/__init__.py (doc/source/nova.rst explains the choice).
NOVA_SHIM_SOURCE = os.path.join('ha_guest', 'nova', 'shim.py')
NOVA_SHIM_TARGET = os.path.join('nova', 'virt', 'ha_guest', '__init__.py')


class BuildPy(build_py.build_py):
    """build_py that also places the Nova driver shim at nova/virt/ha_guest/."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            # An editable install cannot put a file into Nova's folder.
            return
        target = os.path.join(self.build_lib, NOVA_SHIM_TARGET)
        self.mkpath(os.path.dirname(target))
        self.copy_file(NOVA_SHIM_SOURCE, target)


class Distribution(setuptools.Distribution):
    """pbr replaces cmdclass with its own from setup.cfg; add build_py after it."""

    def finalize_options(self):
        super().finalize_options()
        self.cmdclass['build_py'] = BuildPy


setuptools.setup(
    setup_requires=['pbr>=5.8'],
    distclass=Distribution,
    pbr=True)
