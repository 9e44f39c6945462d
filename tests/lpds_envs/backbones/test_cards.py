"""The shipped backbones' cards are the template's rendering of their own records, and refuse disagreeing ones."""

import json
import re
import shutil

import pytest
import yaml

from lpds_envs.backbones.shipped import CHECKPOINT_DIR, backbone_path, shipped_backbones
from lpds_envs.backbones.zoo import cards


@pytest.mark.parametrize("name", shipped_backbones())
def test_shipped_card_is_the_template_of_its_records(name):
    folder = backbone_path(name)
    text = (folder / "README.md").read_text()
    assert text == str(cards.backbone_card(folder)) + "\n", "stale card: run python -m lpds_envs.backbones.zoo.cards"
    meta = yaml.safe_load(text.split("---\n")[1])
    env_id, kind = cards.steering_task(name)
    assert meta["library_name"] == "lpds" and "lpds-zoo" in meta["tags"]
    assert f'gym.make("{env_id}", backbone="{kind}")' in text and f'load_backbone("{name}", verify=True)' in text
    ev = json.loads((folder / "eval.json").read_text()) if (folder / "eval.json").is_file() else None
    if ev is not None and "return_mean" in ev:
        assert f"| return | {ev['return_mean']:.1f} +- {ev['return_std']:.1f} |" in text
        index = {m["type"]: m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
        assert index["mean_reward"] == round(ev["return_mean"], 4)
        assert index.get("success_rate", ev.get("success_rate")) == ev.get("success_rate")


def test_card_of_the_toy_backbone_runs(tmp_path):
    text = (CHECKPOINT_DIR / "multigoal-diffusion" / "README.md").read_text()
    namespace: dict = {}
    exec(compile(re.search(r"```python\n(.+?)\n```", text, re.S).group(1), "README.md", "exec"), namespace)
    assert namespace["chunk"].shape == (1, 1, 2) and namespace["env"].action_space.shape == (2,)


def test_a_card_that_disagrees_with_its_records_is_refused(tmp_path):
    folder = tmp_path / "hopper-flow"
    shutil.copytree(backbone_path("hopper-flow"), folder)
    ev = json.loads((folder / "eval.json").read_text())
    (folder / "eval.json").write_text(json.dumps({**ev, "return_mean": ev["return_mean"] + 100}))
    with pytest.raises(ValueError, match="prior-latent return"):
        cards.write_card(folder)
    assert cards.main(["--check"]) == 0  # the shipped ones are current
