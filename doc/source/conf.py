"""Sphinx configuration for the ha_guest documentation."""

project = 'ha_guest'
copyright = '2025, The ha_guest Authors'
author = 'The ha_guest Authors'

# oslo_config.sphinxext: the configuration reference (operator/configuration.rst) is
# generated from the options themselves, so it cannot drift from the code.
extensions: list[str] = ['oslo_config.sphinxext']

source_suffix = {'.rst': 'restructuredtext'}
root_doc = 'index'
exclude_patterns: list[str] = []

pygments_style = 'sphinx'
html_theme = 'alabaster'
html_static_path: list[str] = []
