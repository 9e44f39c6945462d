import importlib.metadata
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPI_FILE_LIMIT_MB = 100  # PyPI's default upload limit per file (raised only on request)


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_opens_with_demo_and_test_commands_and_ci_runs_the_test_command():
    demo, tests = _readme_commands()[:2]
    assert demo.startswith("pip install torch==2.13.0") and demo.endswith("lpds demo")
    assert "pytest" in tests and re.search(r'pip install "\.\[test[,\]]', tests), (
        "the test command installs the test extra"
    )
    assert "./packages/lpds-zoo" in tests, "the tests need the lpds-zoo data package (locomotion, robomimic backbones)"
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci, "the CI script must run exactly the README's test command"


def test_pyproject_never_pulls_torchvision():
    assert "torchvision" not in (ROOT / "pyproject.toml").read_text()


def _build_wheel(source: Path, out: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build a wheel of {source} here: {res.stderr[-300:]}")
    return next(out.glob("*.whl"))


def test_wheel_ships_the_checkpoints(tmp_path):
    wheel = _build_wheel(ROOT, tmp_path / "lpds")
    zoo_wheel = _build_wheel(ROOT / "packages" / "lpds-zoo", tmp_path / "zoo")
    names = zipfile.ZipFile(wheel).namelist()
    zoo_names = zipfile.ZipFile(zoo_wheel).namelist()
    ckpt = "lpds_envs/backbones/checkpoints/multigoal-diffusion/"
    for f in ("config.json", "model.safetensors", "README.md"):
        assert ckpt + f in names
    assert not any(n.endswith("training_state.pt") for n in names + zoo_names)
    assert any(n.startswith("algorithms/") for n in names)
    assert "lpds_envs/py.typed" in names and "algorithms/py.typed" in names  # PEP 561: the annotations are used
    for root, listing in (
        ("lpds_envs/backbones/checkpoints", names),
        ("packages/lpds-zoo/lpds_zoo/checkpoints", zoo_names),
    ):
        shipped = sorted(p.parent.name for p in (ROOT / root).glob("*/model.safetensors"))
        prefix = root.removeprefix("packages/lpds-zoo/")
        missing = [d for d in shipped if f"{prefix}/{d}/model.safetensors" not in listing]
        assert shipped and not missing, f"checkpoints left out of the wheel of {root}: {missing}"
    assert not any(n.startswith("lpds_zoo/") for n in names), "the data package's backbones travel in lpds-zoo only"
    for w in (wheel, zoo_wheel):
        size_mb = w.stat().st_size / 1e6
        assert size_mb < PYPI_FILE_LIMIT_MB, (
            f"{w.name} is {size_mb:.1f} MB, over PyPI's default {PYPI_FILE_LIMIT_MB} MB file limit: ship fewer or "
            "smaller backbones in it (e.g. move a family to a data package, or hub repos loaded with from_pretrained)"
        )
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "lpds = lpds_envs.experiment.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_console_script_is_installed():
    try:
        eps = importlib.metadata.entry_points(group="console_scripts")
    except Exception:  # pragma: no cover
        pytest.skip("no metadata")
    if not any(ep.dist and ep.dist.name == "lpds" for ep in eps):
        pytest.skip("lpds is not pip-installed in this environment (running from a source tree)")
    assert any(ep.name == "lpds" and ep.value == "lpds_envs.experiment.cli:main" for ep in eps)


def test_demo_runs_end_to_end(tmp_path):
    from lpds_envs.experiment.cli import main

    main(["demo", "--steps", "700", "--rollouts", "100", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "demo_summary.json").read_text())
    png = tmp_path / "demo_trajectories.png"
    assert png.stat().st_size > 5_000 and png.read_bytes()[:4] == b"\x89PNG"
    for key in ("backbone", "lpds", "dsrl_sac"):
        fr = summary[key]["goal_fractions"]
        assert len(fr) == 4 and abs(sum(fr) + summary[key]["no_goal"] - 1) < 1e-9
    assert sum(f > 0.05 for f in summary["backbone"]["goal_fractions"]) == 4  # the backbone covers all goals
