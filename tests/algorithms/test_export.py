"""Deployment: ``export_steered_policy`` writes one file that reproduces ``steered_policy()`` bit for bit, loads with
torch alone, and drives a plain control loop to the same returns as lpds' evaluation (GitHub issue 34, part 4)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from algorithms import DSRLNA, LagrangianSAC, ResidualActionSAC, ResidualActionWrapper, load_steered_policy
from algorithms.deployed import read_metadata
from lpds_envs import LatentSteeringWrapper
from lpds_envs.backbones.shipped import shipped_backbones
from lpds_envs.decoders import CallableDecoder, Decoder, FlowDecoder
from lpds_envs.envs.multigoal_pixels import MultiGoalPixelsEnv
from lpds_envs.registration import task_decoder

ROOT = Path(__file__).resolve().parents[2]
#: a visible Delta from the start (the default initial scale makes it ~0, which would hide a wrong actor path)
POLICY = {"net_arch": [32], "actor_init_scale": 1.0}


def model_for(cls, env, policy="MlpPolicy"):
    return cls(policy, env, learning_starts=8, batch_size=8, policy_kwargs=POLICY, seed=0)


def raw_obs(env, n, seed=0):
    env.observation_space.seed(seed)
    return torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(n)]))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """LP-DS on the toy (shipped diffusion backbone), exported deterministic: (model, path)."""
    model = model_for(LagrangianSAC, gym.make("LPDS-MultiGoal-v0"))
    path = tmp_path_factory.mktemp("export") / "toy.pt2"
    result = model.export_steered_policy(path, env_id="lpds/MultiGoal-v0")
    assert result.format == "torch.export" and result.reason is None
    return model, path


def test_exported_diffusion_policy_is_steered_policy_bit_for_bit(toy):
    model, path = toy
    program = torch.export.load(str(path)).module()  # the torch-only loader
    reference = model.steered_policy(deterministic=True)
    for n in (1, 5, 64):  # the batch dimension is dynamic
        obs = raw_obs(model.env, n, seed=n)
        out = program(obs)
        assert out.shape == (n, 1, 2)
        assert torch.equal(out, reference(obs))
    meta = read_metadata(path)
    assert meta["inputs"] == ["obs"] and meta["deterministic"] and meta["decoder"] == "DiffusionDecoder"
    assert meta["env_id"] == "lpds/MultiGoal-v0" and meta["observation"] == {
        "type": "box",
        "shape": [2],
        "dtype": "float32",
    }


@pytest.mark.parametrize("cls", [LagrangianSAC, DSRLNA])
def test_stochastic_flow_policy_matches_given_the_same_noise(cls, tmp_path):
    """Flow backbone (Avoiding, chunks of 8), stochastic mode: the noise is an input; DSRL-NA's is its Gaussian's."""
    model = model_for(cls, gym.make("LPDS-Avoiding-v0", backbone="flow"))
    result = model.export_steered_policy(tmp_path / "p.pt2", deterministic=False)
    assert result.format == "torch.export" and result.metadata["inputs"] == ["obs", "eps"]
    program = torch.export.load(str(result.path)).module()
    obs = raw_obs(model.env, 6)
    eps = torch.randn(6, result.metadata["noise_dim"], generator=torch.Generator().manual_seed(3))
    expected = model.steered_policy()(obs, eps)
    assert torch.equal(program(obs, eps=eps), expected)
    assert not torch.equal(program(obs, eps=torch.zeros_like(eps)), expected)  # the noise is really used
    policy = load_steered_policy(result.path)
    assert torch.equal(policy(obs, eps), expected)
    one = model.steered_policy()(obs[:1], eps[:1])[0]  # (a batch of 1 may round differently from a row of 6)
    assert torch.equal(policy(obs[0].numpy(), eps[:1]), one)  # one unbatched numpy observation


def test_subspace_decoder_takes_its_complement_noise_as_input(tmp_path):
    """Exact-prior subspace steering: the complement noise the wrapper's decoder draws is an input of the program."""
    decoder = task_decoder("Avoiding", "flow")
    env = LatentSteeringWrapper(
        gym.make("lpds/Avoiding-v0"), decoder, latent_bound=2.5, latent_subspace="chunk_constant"
    )
    model = model_for(LagrangianSAC, env)
    result = model.export_steered_policy(tmp_path / "sub.pt2")
    meta = result.metadata
    assert result.format == "torch.export" and meta["inputs"] == ["obs", "complement_noise"]
    assert meta["noise_dim"] == 2 and meta["complement_noise_shape"] == [8, 2]
    obs = raw_obs(env, 4)
    torch.manual_seed(7)
    expected = model.steered_policy(deterministic=True)(obs)  # draws torch.randn((4, 16)) for the complement
    torch.manual_seed(7)
    complement = torch.randn(4, 16).reshape(4, 8, 2)
    assert torch.equal(torch.export.load(str(result.path)).module()(obs, complement_noise=complement), expected)


class DictMLPDecoder(Decoder):
    """A small torch-only decoder of Dict observations (uint8 image + state), exportable."""

    def __init__(self) -> None:
        super().__init__(latent_shape=(4, 2), action_shape=(4, 2))
        self.net = nn.Linear(8 + 2 + 3, 8)

    def forward(self, obs, w):
        image = obs["image"].float().mean(dim=(1, 2)) / 255.0  # (B, 3), channel-last as the env gives it
        h = torch.cat([w.reshape(w.shape[0], -1).float(), obs["state"].float(), image], dim=1)
        return torch.tanh(self.net(h)).reshape(-1, 4, 2)


def test_dict_observations_export_with_channel_last_images(tmp_path):
    env = LatentSteeringWrapper(MultiGoalPixelsEnv(image_size=40, horizon=8), DictMLPDecoder().eval(), latent_bound=2.5)
    model = model_for(LagrangianSAC, env, policy="MultiInputPolicy")
    result = model.export_steered_policy(tmp_path / "dict.pt2")
    assert result.format == "torch.export"
    assert result.metadata["observation"]["keys"]["image"] == {"shape": [40, 40, 3], "dtype": "uint8"}
    program = torch.export.load(str(result.path)).module()
    obs = [env.reset(seed=s)[0] for s in range(3)]
    batch = {k: torch.as_tensor(np.stack([o[k] for o in obs])) for k in ("image", "state")}
    assert torch.equal(program(batch), model.steered_policy(deterministic=True)(batch))
    policy = load_steered_policy(result.path)
    assert torch.equal(
        policy(obs[0]), model.steered_policy(deterministic=True)({k: v[:1] for k, v in batch.items()})[0]
    )
    with pytest.raises(ValueError, match=r"keys \['state'\], expected \['image', 'state'\]"):
        policy({"state": obs[0]["state"]})


def test_dict_observation_flow_decoder_exports(tmp_path):
    """A FlowDecoder reading a Dict observation (state + image encoded by its CNN), the Franka backbones' kind."""
    size = 40
    decoder = FlowDecoder(
        obs_dim=2 + size * size * 3,
        action_dim=2,
        chunk_size=4,
        hidden_dim=32,
        n_blocks=1,
        obs_keys={"state": (2,), "image": (size, size, 3)},
        image_key="image",
    ).freeze()
    env = LatentSteeringWrapper(MultiGoalPixelsEnv(image_size=size, horizon=8), decoder, latent_bound=2.5)
    model = model_for(LagrangianSAC, env, policy="MultiInputPolicy")
    result = model.export_steered_policy(tmp_path / "flow_dict.pt2")
    assert result.format == "torch.export", result.reason
    obs = [env.reset(seed=s)[0] for s in range(3)]
    batch = {k: torch.as_tensor(np.stack([o[k] for o in obs])) for k in ("image", "state")}
    program = torch.export.load(str(result.path)).module()
    assert torch.equal(program(batch), model.steered_policy(deterministic=True)(batch))


@pytest.mark.slow
def test_pi0_decoder_exports_with_subspace_steering(tmp_path):
    """The tiny PI0 of LPDS-MultiGoalPi0-v0 (transformers), steered through its chunk-constant subspace (~1 min)."""
    pytest.importorskip("transformers", reason='needs the pi0 extra: pip install "lpds[pi0]"')
    env = gym.make("LPDS-MultiGoalPi0-v0", latent_subspace="chunk_constant")
    model = model_for(LagrangianSAC, env, policy="MultiInputPolicy")
    result = model.export_steered_policy(tmp_path / "pi0.pt2")
    assert result.format == "torch.export", result.reason
    assert result.metadata["inputs"] == ["obs", "complement_noise"]
    obs = [env.reset(seed=s)[0] for s in range(2)]
    batch = {k: torch.as_tensor(np.stack([o[k] for o in obs])) for k in ("image", "state")}
    torch.manual_seed(3)
    expected = model.steered_policy(deterministic=True)(batch)  # draws the complement noise from torch's RNG
    torch.manual_seed(3)
    shape = result.metadata["complement_noise_shape"]
    complement = torch.randn(2, int(np.prod(shape))).reshape(2, *shape)
    assert torch.equal(torch.export.load(str(result.path)).module()(batch, complement_noise=complement), expected)


def numpy_decoder():
    """A decoder that leaves torch (numpy inside): torch.export cannot capture it."""
    return CallableDecoder(
        lambda obs, w: torch.from_numpy(np.tanh(w.numpy()) + 0.1 * obs.numpy()[:, None, :]),
        latent_shape=(2, 2),
        action_shape=(2, 2),
    )


def test_state_dict_fallback_for_decoders_export_cannot_capture(tmp_path):
    decoder = numpy_decoder()
    model = model_for(LagrangianSAC, LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), decoder, latent_bound=2.5))
    with pytest.warns(UserWarning, match="torch.export failed"):
        result = model.export_steered_policy(tmp_path / "fallback.pt2")
    assert result.format == "state_dict" and "torch.export failed" in result.reason
    with pytest.raises(ValueError, match="state-dict fallback .* pass decoder="):
        load_steered_policy(result.path)
    other = CallableDecoder(lambda obs, w: w, latent_shape=(3,), action_shape=(1, 3))
    with pytest.raises(ValueError, match="pass the decoder the policy was trained with"):
        load_steered_policy(result.path, decoder=other)
    policy = load_steered_policy(result.path, decoder=decoder)
    obs = raw_obs(model.env, 5)
    assert torch.equal(policy(obs), model.steered_policy(deterministic=True)(obs))


def test_loader_needs_only_torch(toy, tmp_path):
    """The exported file loads and runs in a process where SB3, lpds and the algorithms cannot be imported."""
    model, path = toy
    obs = raw_obs(model.env, 4)
    torch.save(obs, tmp_path / "obs.pt")
    script = (
        "import sys\n"
        "for name in ('stable_baselines3', 'lpds_envs', 'algorithms', 'gymnasium'):\n"
        "    sys.modules[name] = None\n"
        "import torch\n"
        f"policy = torch.export.load({str(path)!r}).module()\n"
        f"torch.save(policy(torch.load({str(tmp_path / 'obs.pt')!r})), {str(tmp_path / 'out.pt')!r})\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert torch.equal(torch.load(tmp_path / "out.pt"), model.steered_policy(deterministic=True)(obs))


def test_clear_errors_on_bad_input(toy, tmp_path):
    model, path = toy
    with pytest.raises(FileNotFoundError, match="no exported policy at"):
        load_steered_policy(tmp_path / "missing.pt2")
    (tmp_path / "junk.pt2").write_text("not a policy")
    with pytest.raises(ValueError, match="not a steered policy"):
        load_steered_policy(tmp_path / "junk.pt2")
    policy = load_steered_policy(path)
    with pytest.raises(ValueError, match=r"observation has shape \(3, 3\), expected \(2,\) or a batch \(B, 2\)"):
        policy(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="takes array observations"):
        policy({"state": np.zeros(2)})
    with pytest.raises(ValueError, match="exported deterministic"):
        policy(np.zeros(2, np.float32), eps=torch.zeros(1, 2))
    with pytest.raises(Exception, match="2"):  # the bare program refuses a wrong observation size too
        torch.export.load(str(path)).module()(torch.zeros(3, 3))
    residual = ResidualActionSAC("MlpPolicy", ResidualActionWrapper(gym.make("lpds/MultiGoal-v0"), numpy_decoder()))
    with pytest.raises(NotImplementedError, match="latent steering"):  # LP-DS-A steers actions, not the latent
        residual.export_steered_policy(tmp_path / "residual.pt2")


def test_control_loop_returns_equal_lpds_evaluation(tmp_path):
    """examples/deploy_franka.py on the toy: its torch-only loop gets exactly the returns of lpds' evaluation."""
    spec = importlib.util.spec_from_file_location("deploy_franka", ROOT / "examples" / "deploy_franka.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "toy.pt2"
    argv = ["--env", "LPDS-MultiGoal-v0", "--train-steps", "24", "--episodes", "3", "--seed", "5", "--out", str(out)]
    report = example.main([*argv, "--compare"])
    assert len(report["returns"]) == 3 and all(s > 0 for s in report["steps"])
    # the same chunks were executed: every observation at a chunk boundary is bit for bit lpds' evaluation's
    for path, expected in zip(report["paths"], report["evaluate_paths"]):
        np.testing.assert_array_equal(np.stack(path), expected)
    # returns agree to float32 rounding: SB3's VecEnv hands each chunk's summed reward over as float32
    np.testing.assert_allclose(report["returns"], report["evaluate_returns"], rtol=1e-6)
    assert read_metadata(out)["env_id"] == "lpds/MultiGoal-v0"


def test_example_default_without_franka_is_a_one_line_error():
    """Without the franka extra (or before the Franka task and backbone exist) the default run says so in one line."""
    if importlib.util.find_spec("robotic") is not None and "franka-pick-place-flow" in shipped_backbones():
        pytest.skip("the Franka task can be made here: the default path runs (slowly) instead of failing")
    res = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "deploy_franka.py")], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "LPDS-FrankaPickPlace-v0" in lines[0] and "--env LPDS-MultiGoal-v0" in lines[0]


def test_reloaded_learner_exports_the_same_policy(toy, tmp_path):
    """A saved learner reloaded elsewhere exports the same program (what a robot engineer does with a run's zip)."""
    model, _ = toy
    model.save(tmp_path / "m.zip")
    back = LagrangianSAC.load(tmp_path / "m.zip", env=gym.make("LPDS-MultiGoal-v0"))
    result = back.export_steered_policy(tmp_path / "back.pt2")
    obs = raw_obs(model.env, 9)
    assert torch.equal(torch.export.load(str(result.path)).module()(obs), model.steered_policy(True)(obs))
