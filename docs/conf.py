"""Sphinx configuration of the lpds documentation site.

Why Sphinx: ``sphinx.ext.autodoc`` renders the SB3-style ``:param name:`` field lists of our docstrings natively
(they are reStructuredText field lists), which is how Stable-Baselines3's own documentation is built; the API
reference therefore comes straight from the code, with no docstring converter (napoleon is not needed). The
hand-written pages are MyST markdown (``myst-parser``), so they also read as plain markdown on GitHub. Theme:
``furo``.

Build (warnings are errors; ``tests/test_docs.py`` runs the same command)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

A module that fails to import makes autodoc warn, so the build fails: the API pages always match the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the package is also installed (editable); this makes a plain checkout work too

project = "lpds"
author = "lpds developers"
copyright = "lpds developers"  # noqa: A001  (Sphinx's name)
try:
    from lpds_envs import __version__ as release
except Exception:  # pragma: no cover - the API pages will report the import error themselves
    release = "0.1.0"
version = release

extensions = [
    "sphinx.ext.autodoc",  # reads :param: docstrings as they are
    "sphinx.ext.viewcode",  # "[source]" links next to each documented object
    "myst_parser",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# --- MyST -------------------------------------------------------------------------------------------------------
myst_enable_extensions = [
    "colon_fence",  # ::: fences for admonitions, readable on GitHub
    "dollarmath",  # $...$ and $$...$$ (rendered by MathJax)
    "deflist",
]
myst_heading_anchors = 3  # GitHub-style #anchors for headings down to ###, so links between pages work on both

# --- autodoc ----------------------------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"  # types go into the :param: list instead of making signatures unreadable
autodoc_typehints_description_target = "documented_params"
autodoc_class_signature = "mixed"
# Optional heavy extras that modules import at import time would go here (e.g. "robosuite", "ray"). Today the
# documented modules import none of them at module level, so nothing is mocked: mocking an installed package
# would hide real import errors.
autodoc_mock_imports: list[str] = []

nitpicky = False  # our docstrings name SB3/Gymnasium/torch types that have no intersphinx target here

# --- HTML -------------------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"lpds {release}"
html_static_path: list[str] = []
html_theme_options = {"navigation_with_keys": True}
