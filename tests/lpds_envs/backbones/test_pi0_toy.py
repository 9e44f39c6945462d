"""The pixel toy's data and its tiny PI0 trainer (lpds_envs.backbones.zoo.pi0_toy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from lpds_envs.backbones.zoo.pi0_toy import multigoal_chunk_dataset, train_pi0_backbone  # noqa: E402
from lpds_envs.envs.multigoal import GOALS  # noqa: E402


def test_app_b_stream_is_unchanged_without_ties():
    s_a, c_a = multigoal_chunk_dataset(500, seed=3)
    s_b, c_b = multigoal_chunk_dataset(500, seed=3, tie_fraction=0.0, origin_fraction=0.0)
    np.testing.assert_array_equal(s_a, s_b)
    np.testing.assert_array_equal(c_a, c_b)
    assert _heads_for_nearest_goal(s_a, c_a) > 0.95


def _heads_for_nearest_goal(states: np.ndarray, chunks: np.ndarray) -> float:
    """Share of start states (away from the goals) whose first action points at App. B's nearest goal."""
    nearest = GOALS[np.linalg.norm(states[:, None] - GOALS[None], axis=2).argmin(axis=1)]
    far = np.abs(nearest - states).min(axis=1) > 0.3
    return float(np.mean((np.sign(chunks[far, 0]) == np.sign(nearest[far] - states[far])).all(axis=1)))


def test_exact_origin_starts_break_the_goal_tie_uniformly():
    states, chunks = multigoal_chunk_dataset(40_000, seed=0, tie_fraction=0.1)
    at_origin = (states == 0).all(axis=1)
    assert 0.09 < at_origin.mean() < 0.11
    # from the origin the first action heads to one of the four goals, each about a quarter of the time
    first = np.sign(chunks[at_origin, 0])
    shares = [np.mean((first == np.sign(g)).all(axis=1)) for g in GOALS]
    assert min(shares) > 0.22 and max(shares) < 0.28, shares
    # the tie is broken once per episode: every later action of the chunk keeps heading to the same goal
    same = (np.sign(chunks[at_origin, 1]) == first).all(axis=1)
    assert same.mean() > 0.95
    # elsewhere the expert is App. B's: unimodal, towards the nearest goal
    assert _heads_for_nearest_goal(states[~at_origin], chunks[~at_origin]) > 0.95


@pytest.mark.filterwarnings("ignore")
def test_tiny_training_run_saves_a_loadable_backbone_and_resumes(tmp_path):
    from lpds_envs.decoders import Pi0Decoder

    out = tmp_path / "pi0"
    kw = dict(steps=4, batch_size=8, n=256, tie_fraction=0.1, checkpoint_every=2, progress=False)
    dec = train_pi0_backbone(out, **kw)
    meta = json.loads((out / "training.json").read_text())
    assert meta["steps"] == 4 and meta["tie_fraction"] == 0.1
    loaded = Pi0Decoder.from_pretrained(out)
    obs = {"image": np.zeros((2, 64, 64, 3), np.uint8), "state": np.zeros((2, 2), np.float32)}
    obs_t = {k: torch.from_numpy(v) for k, v in obs.items()}
    w = torch.randn(2, *dec.latent_shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded(obs_t, w), dec(obs_t, w), rtol=0, atol=0)
    # re-running a finished run resumes at its end (no step is redone) and gives the same weights
    again = train_pi0_backbone(out, **kw)
    torch.testing.assert_close(again(obs_t, w), dec(obs_t, w), rtol=0, atol=0)
    assert "start at step 4/4" in (out / "train.log").read_text()
    with pytest.raises(ValueError, match="other settings"):
        train_pi0_backbone(out, **{**kw, "tie_fraction": 0.2})
