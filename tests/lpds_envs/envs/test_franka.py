"""The Franka tasks in robotic's simulator: lpds/FrankaPickPlace-v0 and lpds/FrankaMugHang-v0.

The registration, argument and missing-extra checks run everywhere; the rest needs the ``franka`` extra (``robotic``,
with Debian's liblapack3) and skips without it. Depth images need an X server: ``DISPLAY``, or Xvfb on the PATH (the
env starts a private one). One env per task is built for the module (building a scene takes about a second).
"""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

import lpds_envs  # noqa: F401
from lpds_envs.envs.franka import FRANKA_RAW_IDS, MISSING_EXTRA
from lpds_envs.envs.franka.pick_place import CUBE_SIZE, GRID, TARGET_XY, check_position
from lpds_envs.envs.franka.shift import DEPLOYMENT, DEPLOYMENT_NO_CAMERA, SimShift, make_shift
from lpds_envs.wrappers import ChunkedActionWrapper

HAS_ROBOTIC = importlib.util.find_spec("robotic") is not None
PICK, MUG = "lpds/FrankaPickPlace-v0", "lpds/FrankaMugHang-v0"
OPEN = np.array([0, 0, 0, 0, 0, 0, 0, -1], np.float32)  # hold still, gripper open
CLOSE = np.array([0, 0, 0, 0, 0, 0, 0, 1], np.float32)


def test_raw_ids_are_registered_with_their_time_limits():
    assert {env_id: gym.spec(env_id).max_episode_steps for env_id in (PICK, MUG)} == {PICK: 150, MUG: 200}
    assert set(FRANKA_RAW_IDS) == {PICK, MUG}


@pytest.mark.skipif(HAS_ROBOTIC, reason="robotic is installed")
@pytest.mark.parametrize("env_id", [PICK, MUG])
def test_missing_extra_is_one_line_naming_it(env_id):
    with pytest.raises(ImportError, match=r"lpds\[franka\]") as err:
        gym.make(env_id)
    assert str(err.value) == MISSING_EXTRA and "\n" not in MISSING_EXTRA


def test_grid_is_the_papers_2x4_layout_and_bad_positions_are_clear_errors():
    xs = sorted({x for x, _ in GRID.values()})
    top, bottom = max(y for _, y in GRID.values()), min(y for _, y in GRID.values())
    # Table 5: top row 7 5 3 1 and bottom row 8 6 4 2, left to right (x grows to the right, y away from the robot)
    assert [p for x in xs for p, (px, py) in GRID.items() if px == x and py == top] == [7, 5, 3, 1]
    assert [p for x in xs for p, (px, py) in GRID.items() if px == x and py == bottom] == [8, 6, 4, 2]
    assert check_position(None) is None and check_position(np.int64(4)) == 4
    for bad in (0, 9, -1, 2.0, "3", True):
        with pytest.raises(ValueError, match="position must be a grid cell 1-8"):
            check_position(bad)
    with pytest.raises(ValueError, match="position must be a grid cell 1-8"):
        gym.make(PICK, position=9)  # checked before the simulator is imported


@pytest.fixture(scope="module")
def pick():
    pytest.importorskip("robotic")
    env = gym.make(PICK)
    yield env
    env.close()


@pytest.fixture(scope="module")
def mug():
    pytest.importorskip("robotic")
    env = gym.make(MUG)
    yield env
    env.close()


def _same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("which", ["pick", "mug"])
def test_both_check_envs(which, request):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = request.getfixturevalue(which)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (8,), np.float32)
    keys = {"joint_pos", "joint_vel", "gripper"} | ({"depth"} if which == "pick" else set())
    assert set(env.observation_space.spaces) == keys


@pytest.mark.parametrize("which", ["pick", "mug"])
def test_seeded_resets_and_rollouts_repeat_exactly(which, request):
    env = request.getfixturevalue(which)
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 8)).astype(np.float32)

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        trajectory = [obs]
        for a in actions:
            obs, reward, terminated, truncated, info = env.step(a)
            assert env.observation_space.contains(obs) and reward == 0.0 and not terminated
            trajectory.append(obs)
        return trajectory

    first, again, other = rollout(3), rollout(3), rollout(4)
    assert _same(first[0], again[0])  # bit-identical first observation for the same seed
    for a, b in zip(first, again):  # and the arm's episode for the same actions (PhysX caches: to ~1e-4 rad); the
        for key in ("joint_pos", "joint_vel"):  # gripper's is not repeated (robotic's gripper keeps hidden state)
            np.testing.assert_allclose(a[key], b[key], atol=1e-2 if key == "joint_vel" else 1e-3, err_msg=key)
    assert not _same(first[0], other[0])  # the seed moves the robot's start (and the objects)
    assert not np.array_equal(first[-1]["joint_pos"], first[0]["joint_pos"])  # the actions moved the arm


def test_pick_place_positions_noise_and_depth(pick):
    raw = pick.unwrapped
    for k in (1, 8):
        _, info = pick.reset(seed=k, options={"position": k})
        cube = raw.frame_position("cube")
        assert info["position"] == k and np.all(np.abs(cube[:2] - GRID[k]) <= raw.position_noise + 1e-9)
    seen = {pick.reset(seed=s)[1]["position"] for s in range(40)}  # position=None: a random cell per reset
    assert seen == set(GRID)
    with pytest.raises(ValueError, match="grid cell"):
        pick.reset(options={"position": 0})
    obs, _ = pick.reset(seed=0, options={"position": 7})
    depth = obs["depth"]
    assert depth.dtype == np.float32 and 0.3 < np.median(depth) < 1.5  # the table, about 0.6-1 m away
    obs8, _ = pick.reset(seed=0, options={"position": 8})
    assert np.abs(obs8["depth"] - depth).max() > 0.02  # the cube moved in the image


def test_chunks_render_depth_only_for_the_returned_observation(pick):
    chunked = ChunkedActionWrapper(pick, chunk_size=4)
    obs, _ = chunked.reset(seed=0)
    obs, _, _, _, info = chunked.step(np.tile(OPEN, (4, 1)))
    assert info["executed_steps"] == 4 and info["depth_rendered"]
    np.testing.assert_array_equal(obs["depth"], pick.unwrapped.depth_image())
    pick.unwrapped.skip_next_observation()
    obs, *_, info = pick.step(OPEN)
    assert not info["depth_rendered"] and not obs["depth"].any()


@pytest.fixture
def fresh_pick():
    """A new env (the success checks do not depend on earlier episodes)."""
    pytest.importorskip("robotic")
    env = gym.make(PICK)
    yield env
    env.close()


@pytest.fixture
def fresh_mug():
    pytest.importorskip("robotic")
    env = gym.make(MUG)
    yield env
    env.close()


def test_gripper_reopens_after_reset_in_a_reused_env(pick):
    pick.reset(seed=0)
    for a in np.random.default_rng(0).uniform(-1, 1, (10, 8)).astype(np.float32):
        pick.step(a)
    pick.step(CLOSE)
    pick.reset(seed=1)
    for _ in range(3):
        obs = pick.step(OPEN)[0]
    assert obs["gripper"][0] >= 0.035


def test_pick_place_success_needs_the_cube_on_the_pad_and_released(fresh_pick):
    pick = fresh_pick
    raw = pick.unwrapped
    pick.reset(seed=0, options={"position": 2})
    rest = CUBE_SIZE / 2 + 0.65
    for _ in range(3):  # cube still on its grid cell: no success
        _, reward, terminated, _, info = pick.step(OPEN)
        assert not info["success"] and reward == 0.0 and not terminated
    raw.place_cube([TARGET_XY[0] + 0.01, TARGET_XY[1] - 0.01, rest], [1, 0, 0, 0])  # set down on the pad
    _, reward, terminated, _, info = pick.step(OPEN)
    assert info["success"] and reward == 1.0 and terminated and info["cube_to_target"] < 0.02, (
        info,
        raw.gripper_opening(),
    )
    raw.place_cube([TARGET_XY[0] + 0.05, TARGET_XY[1], rest], [1, 0, 0, 0])  # off the pad by 5 cm
    assert not pick.step(OPEN)[4]["success"]
    raw.place_cube([*TARGET_XY, rest + 0.1], [1, 0, 0, 0])  # above the pad, falling
    assert not pick.step(OPEN)[4]["success"]
    raw.place_cube([*TARGET_XY, rest], [1, 0, 0, 0])  # on the pad, but the gripper is commanded closed
    assert not pick.step(CLOSE)[4]["success"]


def test_mug_hanging_on_the_peg_is_success_and_standing_is_not(fresh_mug):
    mug = fresh_mug
    raw = mug.unwrapped
    mug.reset(seed=0)
    for _ in range(10):  # standing on the table, where the reset put it: stable, no success
        _, _, terminated, _, info = mug.step(OPEN)
        assert not info["success"] and not terminated
    assert abs(info["mug_height"] - (0.65 + 0.045)) < 0.002
    raw.place_mug(raw.hanging_mug_position())  # handle over the peg, let go
    for step in range(60):  # it swings on the peg until it comes to rest there: success ends the episode
        _, reward, terminated, _, info = mug.step(OPEN)
        assert info["hole_to_peg_axis"] < 0.03 and info["mug_height"] > 0.75, (step, info)  # hanging throughout
        if terminated:
            break
    assert info["success"] and reward == 1.0 and terminated, info
    raw.place_mug([0.0, 0.30, 0.695])  # back on the table, elsewhere
    assert not mug.step(OPEN)[4]["success"]


def test_render_rgb_array():
    pytest.importorskip("robotic")
    env = gym.make(MUG, render_mode="rgb_array", render_size=(48, 64))
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 1
    env.close()


@pytest.mark.parametrize("kwargs", [{"max_joint_delta": 0}, {"render_mode": "human"}, {"position_noise": 0.2}])
def test_bad_arguments_are_clear_errors(kwargs):
    pytest.importorskip("robotic")
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        gym.make(PICK, **kwargs)


def test_bad_actions_are_clear_errors(mug):
    mug.reset(seed=0)
    with pytest.raises(ValueError, match=r"action has shape \(7,\), expected \(8,\)"):
        mug.unwrapped.step(np.zeros(7))
    with pytest.raises(ValueError, match="finite"):
        mug.unwrapped.step(np.full(8, np.nan))


# ------------------------------------------------------------------------------------------ deployment shift
@pytest.mark.parametrize(
    "shift, match",
    [
        ("shifted", "shift must be None, 'nominal', 'deployment', 'mild'"),
        (3, "shift must be None"),
        ({"gravity": 1.0}, r"unknown shift keys \['gravity'\]"),
        ({"friction": 0}, r"shift\['friction'\] must be in \(0, 10.0\]"),
        ({"mass": "heavy"}, r"shift\['mass'\] must be a number"),
        ({"joint_gain": 3.0}, r"shift\['joint_gain'\] must be in \(0, 2.0\]"),
        ({"latency": 1.5}, r"shift\['latency'\] must be an integer"),
        ({"latency": True}, r"shift\['latency'\] must be an integer"),
        ({"camera_offset": (0.1, 0.0)}, r"shift\['camera_offset'\] must be 3 finite numbers"),
        ({"camera_offset": "up"}, r"shift\['camera_offset'\] must be 3 finite numbers"),
        ({"depth_noise": -0.01}, r"shift\['depth_noise'\] must be in \[0, 0.1\] m"),
    ],
)
def test_bad_shifts_are_clear_errors(shift, match):
    with pytest.raises(ValueError, match=match):
        make_shift(shift, has_camera=True)
    with pytest.raises(ValueError, match=match):
        gym.make(PICK, shift=shift)  # checked before the simulator is imported


def test_shift_presets_and_dicts():
    assert make_shift(None, True) == make_shift("nominal", False) == SimShift() and SimShift().is_nominal
    assert make_shift("deployment", True) == DEPLOYMENT and not DEPLOYMENT.is_nominal
    assert make_shift("deployment", False) == DEPLOYMENT_NO_CAMERA  # the mug task has no camera
    assert DEPLOYMENT_NO_CAMERA.camera_offset == (0.0, 0.0, 0.0) and DEPLOYMENT_NO_CAMERA.depth_noise == 0.0
    # "mild": half of each continuous perturbation's distance from nominal, the same one step of latency
    mild, mild_mug = make_shift("mild", True), make_shift("mild", False)
    for key in ("friction", "mass", "joint_gain", "depth_noise"):
        assert getattr(mild, key) - getattr(SimShift(), key) == pytest.approx(
            (getattr(DEPLOYMENT, key) - getattr(SimShift(), key)) / 2
        ), key
    assert mild.camera_offset == pytest.approx(tuple(v / 2 for v in DEPLOYMENT.camera_offset))
    assert mild.latency == DEPLOYMENT.latency == 1
    assert mild_mug.camera_offset == (0.0, 0.0, 0.0) and mild_mug.depth_noise == 0.0 and mild_mug.mass == mild.mass
    # a dict overrides the nominal values of its keys only
    assert make_shift({"latency": 1}, True) == SimShift(latency=1)
    assert make_shift(DEPLOYMENT.as_dict(), True) == DEPLOYMENT
    with pytest.raises(ValueError, match="this task has no camera"):
        make_shift({"depth_noise": 0.01}, has_camera=False)
    with pytest.raises(ValueError, match="this task has no camera"):
        gym.make(MUG, shift={"camera_offset": (0.01, 0, 0)})


@pytest.fixture(scope="module")
def shifted_pick():
    pytest.importorskip("robotic")
    env = gym.make(PICK, shift="deployment")
    yield env
    env.close()


def test_deployment_pick_place_changes_what_the_docstring_says(pick, shifted_pick):
    nominal, shifted = pick.unwrapped, shifted_pick.unwrapped
    assert shifted.shift == DEPLOYMENT and nominal.shift.is_nominal
    cube, nominal_cube = shifted.config.getFrame("cube"), nominal.config.getFrame("cube")
    assert nominal_cube.getMass() == pytest.approx(0.1) and cube.getMass() == pytest.approx(0.15)
    assert cube.getAttributes()["friction"] == 0.5 and "friction" not in nominal_cube.getAttributes()
    moved = shifted.frame_position("depth_camera") - nominal.frame_position("depth_camera")
    np.testing.assert_allclose(moved, DEPLOYMENT.camera_offset, atol=1e-9)

    obs_n, _ = pick.reset(seed=5, options={"position": 3})
    obs_s, _ = shifted_pick.reset(seed=5, options={"position": 3})
    np.testing.assert_array_equal(obs_n["joint_pos"], obs_s["joint_pos"])  # same start for the same seed
    clean = shifted.depth_image()
    assert np.abs(clean - obs_n["depth"]).max() > 0.05  # the camera moved
    valid = clean > 0
    noise = (obs_s["depth"] - clean)[valid]
    assert 0.004 < noise.std() < 0.006 and abs(noise.mean()) < 1e-3  # 5 mm depth noise on valid pixels
    assert not obs_s["depth"][~valid].any()  # invalid pixels stay 0

    # one step of latency: the first step holds still, the second executes the first action
    a = np.array([0.8, -0.5, 0.5, 0.6, 0.0, 0.0, 0.0, -1.0], np.float32)
    obs_s1 = shifted_pick.step(a)[0]
    np.testing.assert_allclose(obs_s1["joint_pos"], obs_s["joint_pos"], atol=2e-3)
    obs_n1 = pick.step(a)[0]
    obs_s2 = shifted_pick.step(OPEN)[0]
    moved_n = obs_n1["joint_pos"][:4] - obs_n["joint_pos"][:4]
    moved_s = obs_s2["joint_pos"][:4] - obs_s1["joint_pos"][:4]
    np.testing.assert_allclose(moved_s, 0.85 * moved_n, rtol=0.02)  # 85% joint-delta tracking
    assert np.abs(moved_n).min() > 0.01


def test_shifted_episodes_repeat_for_the_same_seed(shifted_pick):
    first, _ = shifted_pick.reset(seed=11)
    again, _ = shifted_pick.reset(seed=11)
    other, _ = shifted_pick.reset(seed=12)
    assert _same(first, again) and not np.array_equal(first["depth"], other["depth"])


def test_deployment_mug_changes_mass_friction_gain_and_latency(mug):
    env = gym.make(MUG, shift="deployment")
    raw = env.unwrapped
    assert raw.shift == DEPLOYMENT_NO_CAMERA
    assert raw.config.getFrame("mug").getMass() == pytest.approx(0.225)
    assert all(raw.config.getFrame(f).getAttributes()["friction"] == 0.5 for f in ("mug", "mug_handle_outer"))
    a = np.array([0.8, -0.5, 0.0, 0.6, 0.0, 0.8, 0.0, -1.0], np.float32)
    nominal = [mug.reset(seed=0)[0]["joint_pos"]] + [mug.step(a)[0]["joint_pos"] for _ in range(4)]
    shifted = [env.reset(seed=0)[0]["joint_pos"]] + [env.step(a)[0]["joint_pos"] for _ in range(5)]
    np.testing.assert_array_equal(shifted[1], shifted[0])  # latency: the first step holds still
    # then the nominal trajectory one step late, at 85% of each joint's displacement
    np.testing.assert_allclose(
        np.subtract(shifted[2:], shifted[1]), 0.85 * np.subtract(nominal[1:], nominal[0]), atol=1e-3
    )
    env.close()
