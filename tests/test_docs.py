"""The documentation site builds with warnings as errors, and its pages cover the API and the task zoo.

Runs the documented build command (``python -m sphinx -W --keep-going -b html docs <out>``) in a subprocess, so
a docstring that does not parse, a broken include or cross-reference, or a page missing from a toctree fails here.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

pytest.importorskip("sphinx", reason='the docs build needs the docs extra: pip install ".[docs]"')
pytest.importorskip("myst_parser", reason='the docs build needs the docs extra: pip install ".[docs]"')
pytest.importorskip("furo", reason='the docs build needs the docs extra: pip install ".[docs]"')

API_PAGES = [
    "lpds_envs",
    "decoders",
    "codec",
    "subspace",
    "wrappers",
    "vector",
    "registration",
    "metrics",
    "backbones",
    "algorithms",
    "evaluation",
    "experiment",
]


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"sphinx -W failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    return out


def test_site_builds_with_every_page(html: Path) -> None:
    for page in [
        "index",
        "getting-started",
        "concepts",
        "zoo",
        "compatibility",
        "rl-zoo",
        "contributing",
        "results/index",
    ]:
        assert (html / f"{page}.html").is_file(), f"{page}.html was not built"
    for page in API_PAGES:
        assert (html / "api" / f"{page}.html").is_file(), f"api/{page}.html was not built"


#: API page -> the module it documents; every public class and function of the module must be on its page
API_MODULES = {
    "decoders": "lpds_envs.decoders",
    "codec": "lpds_envs.codec",
    "subspace": "lpds_envs.subspace",
    "wrappers": "lpds_envs.wrappers",
    "vector": "lpds_envs.vector",
    "registration": "lpds_envs.registration",
    "metrics": "lpds_envs.metrics",
    "backbones": "lpds_envs.backbones",
    "algorithms": "algorithms",
    "evaluation": "lpds_envs.evaluation",
}


def _public_callables(module_name: str) -> list[str]:
    """``__all__``'s classes and functions, or (without ``__all__``) those the module defines itself."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if getattr(v, "__module__", None) == module_name]
    return [
        n
        for n in names
        if not n.startswith("_") and (inspect.isclass(getattr(module, n)) or inspect.isfunction(getattr(module, n)))
    ]


def test_api_pages_document_every_public_class_and_function(html: Path) -> None:
    for page, module_name in API_MODULES.items():
        text = (html / "api" / f"{page}.html").read_text(encoding="utf-8")
        names = _public_callables(module_name)
        assert names, f"{module_name} has no public classes or functions?"
        missing = [n for n in names if f'id="{module_name}.{n}"' not in text]
        assert not missing, f"docs/api/{page}.md does not document {module_name}.{missing} (add them to its members)"


def test_top_level_page_lists_every_reexport() -> None:
    import lpds_envs

    page = (DOCS / "api" / "lpds_envs.md").read_text(encoding="utf-8")
    missing = [n for n in lpds_envs.__all__ if n != "__version__" and f".{n}`" not in page]
    assert not missing, f"docs/api/lpds_envs.md does not list lpds_envs.{missing}"


def test_zoo_has_a_section_and_the_cards_of_every_registered_task() -> None:
    from lpds_envs.registration import TASKS

    zoo = (DOCS / "zoo.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## `(LPDS-[A-Za-z0-9]+-v0)`$", zoo, flags=re.M))
    assert headings == {f"LPDS-{name}-v0" for name in TASKS}
    included = set(re.findall(r"checkpoints/([^/]+)/README\.md", zoo))
    shipped = {ckpt for task in TASKS.values() for ckpt in task.backbones.values()}
    assert shipped <= included, f"backbone cards missing from docs/zoo.md: {sorted(shipped - included)}"
