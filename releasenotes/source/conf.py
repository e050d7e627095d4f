"""Sphinx configuration for the ha_guest release notes."""

project = 'ha_guest Release Notes'
copyright = '2025, The ha_guest Authors'
author = 'The ha_guest Authors'

extensions = ['reno.sphinxext']

source_suffix = {'.rst': 'restructuredtext'}
root_doc = 'index'
exclude_patterns: list[str] = []

pygments_style = 'sphinx'
html_theme = 'alabaster'
html_static_path: list[str] = []
