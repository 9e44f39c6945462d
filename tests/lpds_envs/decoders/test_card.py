"""Decoder model cards: the lpds template (not huggingface_hub's placeholder), Hub metadata, and a usage snippet that
runs as written and gives the saved decoder's outputs."""

import re

import numpy as np
import pytest
import torch
import yaml

from lpds_envs.backbones import ChunkDataset, train_backbone
from lpds_envs.decoders import DiffusionDecoder, FlowDecoder, load_decoder
from lpds_envs.decoders.card import card_body, decoder_card, format_metric


def _snippet(card: str) -> str:
    return re.search(r"```python\n(.+?)\n```", card, re.S).group(1)


def _meta(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


@pytest.mark.parametrize("cls", [FlowDecoder, DiffusionDecoder])
def test_save_pretrained_writes_the_lpds_card_and_its_snippet_runs(cls, tmp_path):
    torch.manual_seed(0)
    decoder = cls(obs_dim=3, action_dim=2, chunk_size=4, hidden_dim=32, num_inference_steps=3)
    decoder.save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "More Information Needed" not in card
    meta = _meta(card)
    assert meta["library_name"] == "lpds" and meta["pipeline_tag"] == "robotics"
    assert {"lpds", "robotics"} <= set(meta["tags"]) and (
        "flow-matching" if cls is FlowDecoder else "diffusion-policy"
    ) in meta["tags"]
    n_params = sum(p.numel() for p in decoder.parameters())
    assert f"{n_params:,}" in card and "action chunk (4, 2)" in card
    namespace: dict = {}
    exec(compile(_snippet(card), "README.md", "exec"), namespace)
    obs, w = namespace["obs"], namespace["w"]
    assert torch.equal(namespace["chunk"], decoder(obs, w))  # the snippet loads this very decoder
    assert torch.equal(load_decoder(tmp_path)(obs, w), decoder(obs, w))  # and the folder round trip is bit-exact


def test_card_with_env_steers_the_decoder(tmp_path):
    decoder = DiffusionDecoder(obs_dim=2, action_dim=2, chunk_size=1, hidden_dim=16, num_inference_steps=2)
    decoder.save_pretrained(tmp_path, model_card_kwargs={"env_id": "LPDS-MultiGoal-v0", "title": "My toy decoder"})
    card = (tmp_path / "README.md").read_text()
    assert card_body(card).startswith("# My toy decoder")
    namespace: dict = {}
    exec(compile(_snippet(card), "README.md", "exec"), namespace)
    env = namespace["env"]
    assert env.get_wrapper_attr("decoder") is namespace["decoder"]  # steering this decoder, not the shipped one


def test_train_backbone_card_states_the_run(tmp_path):
    rng = np.random.default_rng(0)
    data = ChunkDataset(rng.uniform(-1, 1, (256, 2)), rng.uniform(-1, 1, (256, 2, 2)))
    dec = train_backbone(
        "flow", data, tmp_path, steps=100, batch_size=32, seed=4, progress=False, hidden_dim=16, n_blocks=1,
        card={"env_id": "LPDS-MultiGoal-v0", "metrics": [("held-out MSE", "0.5", "a caller's own measurement")]},
    )  # fmt: skip
    card = (tmp_path / "README.md").read_text()
    assert "256 (observation, action chunk) pairs" in card and "100 AdamW steps, batch 32" in card
    assert f"| final BC loss (EMA-smoothed, training data) | {format_metric(dec.bc_loss)} |" in card
    assert "| held-out MSE | 0.5 | a caller's own measurement |" in card and "seed 4" in card
    assert 'train_backbone("flow", data, out_dir=' in card
    namespace: dict = {}
    exec(compile(_snippet(card), "README.md", "exec"), namespace)
    assert torch.equal(namespace["chunk"], dec(namespace["obs"], namespace["w"]))


def test_cards_never_print_numbers_that_were_not_computed(tmp_path):
    assert format_metric(float("nan")) == "not recorded" and format_metric(0.123456) == "0.1235"
    rng = np.random.default_rng(0)
    data = ChunkDataset(rng.uniform(-1, 1, (64, 2)), rng.uniform(-1, 1, (64, 1, 2)))
    train_backbone("flow", data, tmp_path, steps=5, batch_size=8, progress=False, hidden_dim=8, n_blocks=1)
    card = (tmp_path / "README.md").read_text()  # 5 steps: no loss reading (one every 100 steps)
    assert "| final BC loss (EMA-smoothed, training data) | not recorded |" in card and "nan" not in card
    plain = str(decoder_card({"decoder_type": "flow"}, source="x"))
    assert "## Metrics" not in plain and "## Data" not in plain  # no section without information
