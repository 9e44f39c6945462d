"""The shape of the code, checked in CI: one-way layers, no hidden import cycles, one formatting, typed public API."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lpds_envs", "algorithms")


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; it comes with the test extra: pip install '.[test]'")
    return path


def test_layers_import_in_one_direction():
    """import-linter's contracts in pyproject.toml ([tool.importlinter])."""
    res = subprocess.run([_tool("lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def _local_imports(path: Path) -> list[str]:
    """First-party imports inside functions (``file:line module``); third-party ones (optional extras) are allowed."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom):
                names = [("." * inner.level) + (inner.module or "")]
            elif isinstance(inner, ast.Import):
                names = [a.name for a in inner.names]
            else:
                continue
            for name in names:
                top = name.lstrip(".").split(".")[0]
                first_party = name.startswith(".") or top in PACKAGES
                if first_party:
                    found.append(f"{path.relative_to(ROOT)}:{inner.lineno} {name}")
    return found


def test_no_function_local_first_party_imports():
    """A first-party import inside a function hides a cycle or a layer violation from import-linter."""
    found = [hit for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) for hit in _local_imports(p)]
    assert not found, "move these imports to the top of their module:\n" + "\n".join(found)


def test_ruff_lint_and_format():
    ruff = _tool("ruff")
    lint = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-3000:]
    fmt = subprocess.run([ruff, "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert fmt.returncode == 0, "run `ruff format`:\n" + fmt.stdout[-3000:]


def test_public_api_type_checks():
    """mypy on the files listed in [tool.mypy] (the modules a user imports)."""
    res = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-1000:]
