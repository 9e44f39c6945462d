"""Registration of the raw task ids (``lpds/<Task>-v0``) and the steering ids (``LPDS-<Task>-v0``).

``gym.make("LPDS-<Task>-v0", backbone=..., latent_bound=..., device=..., **task_kwargs)`` builds the raw
task and wraps it with its shipped frozen backbone in a :class:`~lpds_envs.wrappers.LatentSteeringWrapper`;
``env.unwrapped`` is the task env; ``backbone`` may also be the folder of a saved decoder (``config.json`` +
``model.safetensors``, e.g. a zoo backbone that is not shipped), which ``lpds train --set env_kwargs.backbone=PATH``
passes the same way. Later zoos add entries to :data:`TASKS`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from .backbones.shipped import ZOO_INSTALL_HINT, ZOO_PACKAGE_BACKBONES, load_backbone
from .codec import DEFAULT_LATENT_BOUND
from .decoders import load_decoder
from .decoders.base import Decoder
from .envs.franka import FRANKA_RAW_IDS, import_robotic
from .envs.libero import TASKS as LIBERO_TASKS
from .envs.libero import import_libero
from .envs.robomimic import TASKS as ROBOMIMIC_TASKS
from .envs.robomimic import import_robosuite
from .wrappers import LatentSteeringWrapper


@dataclass(frozen=True)
class SteeringTask:
    """What an ``LPDS-<name>-v0`` id is made of."""

    raw_id: str
    backbones: dict[str, str]  # backbone kind -> shipped checkpoint name
    default_backbone: str
    latent_bound: float | None = DEFAULT_LATENT_BOUND
    extra: str | None = None  # pip extra the raw task needs
    notes: dict[str, Any] = field(default_factory=dict)
    raw_kwargs: dict[str, Any] = field(default_factory=dict)  # defaults for the raw task (gym.make kwargs override)
    latent_subspace: str | None = None  # default steering parameterisation (None = the full decoder latent)


#: every ``LPDS-<name>-v0`` steering task by name: its raw task id, shipped backbones and latent box (the one
#: source of each task's latent bound)
TASKS: dict[str, SteeringTask] = {
    "MultiGoal": SteeringTask(
        raw_id="lpds/MultiGoal-v0",
        backbones={"diffusion": "multigoal-diffusion"},
        default_backbone="diffusion",
        latent_bound=2.5,
    ),
    # D3IL's Avoiding (paper Sec. 5.2.2, App. F), re-implemented kinematically (lpds_envs.envs.avoiding); diffusion
    # and flow backbones on the same scripted demonstrations of all 24 routes (lpds_envs.backbones.zoo.avoiding),
    # chunks of 8 steps
    "Avoiding": SteeringTask(
        raw_id="lpds/Avoiding-v0",
        backbones={"diffusion": "avoiding-diffusion", "flow": "avoiding-flow"},
        default_backbone="diffusion",
        latent_bound=2.5,
    ),
    # gymnasium-robotics Adroit (needs the adroit extra); flow backbones trained on scripted demos (App. A.2)
    "AdroitDoor": SteeringTask(
        raw_id="lpds/AdroitDoor-v0",
        backbones={"flow": "adroit-door-flow"},
        default_backbone="flow",
        latent_bound=2.5,
        extra="adroit",
    ),
    "AdroitHammer": SteeringTask(
        raw_id="lpds/AdroitHammer-v0",
        backbones={"flow": "adroit-hammer-flow"},
        default_backbone="flow",
        latent_bound=2.5,
        extra="adroit",
    ),
    "AdroitPen": SteeringTask(
        raw_id="lpds/AdroitPen-v0",
        backbones={"flow": "adroit-pen-flow"},
        default_backbone="flow",
        latent_bound=2.5,
        extra="adroit",
    ),
    "AdroitRelocate": SteeringTask(
        raw_id="lpds/AdroitRelocate-v0",
        backbones={"flow": "adroit-relocate-flow"},
        default_backbone="flow",
        latent_bound=2.5,
        extra="adroit",
    ),
    # Gymnasium MuJoCo locomotion (needs the locomotion extra); diffusion (default) and flow backbones trained on
    # medium SB3 SAC data, DSRL's latent boxes (action_magnitude of ajwagen/dsrl cfg/gym); 1000-step episodes
    **{
        task: SteeringTask(
            raw_id=f"{task}-v5",
            backbones={"diffusion": f"{task.lower()}-diffusion", "flow": f"{task.lower()}-flow"},
            default_backbone="diffusion",
            latent_bound=bound,
            extra="locomotion",
            notes={
                "build": f"python -m lpds_envs.backbones.zoo.locomotion all --env {task}-v5 && "
                f"python -m lpds_envs.backbones.zoo.locomotion ship --env {task}-v5"
            },
        )
        for task, bound in (("Hopper", 1.5), ("Walker2d", 2.5), ("HalfCheetah", 1.5))
    },
    # robomimic on robosuite (needs the robomimic extra, in its own environment: mujoco < 3.10); diffusion (default)
    # and flow backbones trained on scripted demos; DSRL's robomimic settings: latent box 1.5 (action_magnitude),
    # reward 1[success] - 1 per step (reward_offset 1), episodes run to the time limit (300 / 300 / 400 raw steps)
    **{
        task: SteeringTask(
            raw_id=f"lpds/{task}-v0",
            backbones={"diffusion": f"robomimic-{task.lower()}-diffusion", "flow": f"robomimic-{task.lower()}-flow"},
            default_backbone="diffusion",
            latent_bound=1.5,
            extra="robomimic",
            notes={
                "build": f"python -m lpds_envs.backbones.zoo.robomimic all --task {task.lower()} && "
                f"python -m lpds_envs.backbones.zoo.robomimic ship --task {task.lower()}"
            },
            raw_kwargs={"reward_offset": 1.0},
        )
        for task in ("Lift", "Can", "Square")
    },
    # LIBERO-90 task 57 (needs the libero extra, in its own environment, and the pi0 extra): a tiny PI0 trained by BC on
    # scripted demos (lpds_envs.backbones.zoo.libero); exact-prior subspace steering by default (one chunk-constant
    # direction per used action dim, as the pi0 toy), DSRL-pi0's repeated noise with latent_subspace="repeat"
    "LiberoCreamCheese": SteeringTask(
        raw_id="lpds/LiberoCreamCheese-v0",
        backbones={"pi0": "libero-cream-cheese-pi0"},
        default_backbone="pi0",
        latent_bound=2.5,
        extra="libero",
        latent_subspace="chunk_constant",
        raw_kwargs={"reward_offset": 1.0},  # -1 per raw step until success, as DSRL-pi0's sparse -1/0 reward
        notes={
            "build": "python -m lpds_envs.backbones.zoo.libero demos --episodes 100 && "
            "python -m lpds_envs.backbones.zoo.libero backbone --steps 3000 --stop-at 1400 && "
            "python -m lpds_envs.backbones.zoo.libero ship && python -m lpds_envs.backbones.zoo.libero evaluate"
        },
    ),
    # Franka Panda tasks in robotic's simulator (paper Sec. 5.7, App. G; needs the franka extra): flow backbones trained
    # on KOMO-planned scripted demos (lpds_envs.backbones.zoo.franka), chunks of 8 steps; the pick-and-place decoder
    # reads the Dict observation and encodes its depth image with a small CNN. shift="deployment" (a raw-task kwarg)
    # gives the shifted simulator to deploy in
    **{
        f"Franka{name}": SteeringTask(
            raw_id=f"lpds/Franka{name}-v0",
            backbones={"flow": f"franka-{task.replace('_', '-')}-flow"},
            default_backbone="flow",
            latent_bound=2.5,
            extra="franka",
            notes={
                "build": f"python -m lpds_envs.backbones.zoo.franka demos --task {task} --out runs/{task}/demos.npz && "
                f"python -m lpds_envs.backbones.zoo.franka backbone --task {task} --data runs/{task}/demos.npz "
                f"--out runs/{task}/flow && python -m lpds_envs.backbones.zoo.franka evaluate --task {task} "
                f"--backbone runs/{task}/flow && python -m lpds_envs.backbones.zoo.franka ship --task {task} "
                f"--backbone runs/{task}/flow --data runs/{task}/demos.npz"
            },
        )
        for name, task in (("PickPlace", "pick_place"), ("MugHang", "mug_hang"))
    },
    # the toy seen through a 64x64 camera, steered through a tiny PI0 (needs the pi0 extra)
    "MultiGoalPi0": SteeringTask(
        raw_id="lpds/MultiGoalPixels-v0",
        backbones={"pi0": "multigoal-pi0"},
        default_backbone="pi0",
        latent_bound=2.5,
        extra="pi0",
    ),
}


#: raw Adroit ids: gymnasium-robotics' ``AdroitHand<Task>-v1`` (dense reward, 200 steps), made through a lazy entry
#: point so that ``import lpds_envs`` never needs the ``adroit`` extra
ADROIT_RAW_IDS: dict[str, str] = {
    f"lpds/Adroit{name}-v0": name.lower() for name in ("Door", "Hammer", "Pen", "Relocate")
}


#: raw robomimic ids: ``lpds_envs.envs.robomimic.RobomimicEnv`` over robosuite (episode limits of DSRL's robomimic
#: configs), made through a lazy entry point so that ``import lpds_envs`` never needs the ``robomimic`` extra
ROBOMIMIC_RAW_IDS: dict[str, str] = {"lpds/Lift-v0": "lift", "lpds/Can-v0": "can", "lpds/Square-v0": "square"}

#: raw LIBERO ids: ``lpds_envs.envs.libero.LiberoEnv`` (episode limit of openpi's LIBERO evaluation for the task's
#: suite), made through a lazy entry point so that ``import lpds_envs`` never needs the ``libero`` extra
LIBERO_RAW_IDS: dict[str, str] = {"lpds/LiberoCreamCheese-v0": "cream_cheese"}


def _task(name: str) -> SteeringTask:
    if name not in TASKS:
        raise ValueError(f"unknown LPDS task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]


def task_decoder(name: str, backbone: str | None = None, device: str | torch.device = "cpu") -> Decoder:
    """The shipped frozen backbone of task ``name`` (``backbone`` = kind, default the task's default), or the decoder
    saved in folder ``backbone`` when it is no kind of the task's but a folder with a ``config.json``."""
    task = _task(name)
    kind = backbone or task.default_backbone
    if kind not in task.backbones:
        if (Path(kind) / "config.json").is_file():
            return load_decoder(Path(kind), device=device)
        raise ValueError(
            f"LPDS-{name}-v0 ships backbones {sorted(task.backbones)}, not {kind!r} (nor is it a decoder folder)"
        )
    try:
        return load_backbone(task.backbones[kind], device=device)
    except FileNotFoundError as exc:
        if task.backbones[kind] in ZOO_PACKAGE_BACKBONES:  # shipped, in the data package that is not installed
            raise FileNotFoundError(
                f"LPDS-{name}-v0's {kind} backbone ({task.backbones[kind]}) ships in the lpds-zoo data package, "
                f"which is not installed: {ZOO_INSTALL_HINT}"
            ) from exc
        if "build" not in task.notes:
            raise
        raise FileNotFoundError(
            f"LPDS-{name}-v0's {kind} backbone ({task.backbones[kind]}) is not shipped with this version of lpds; "
            f"build it with `{task.notes['build']}`, or pass decoder=<your decoder>"
        ) from exc


def _require_extra(task: SteeringTask) -> None:
    """One-line error naming the pip extra when the raw task's simulator is missing (locomotion: MuJoCo)."""
    if task.extra == "locomotion":
        if importlib.util.find_spec("mujoco") is None:
            raise ImportError(f'{task.raw_id} needs MuJoCo: pip install "lpds[locomotion]"')
    elif task.extra == "robomimic":
        import_robosuite()  # one-line ImportError naming the extra (and the mujoco pin) when it cannot be used
    elif task.extra == "libero":
        import_libero()
    elif task.extra == "franka":
        import_robotic()  # one-line ImportError naming the extra (or Debian's liblapack3)


def default_subspace(env_id: Any, latent_subspace: Any = "default") -> Any:
    """``latent_subspace``, or for ``"default"`` the steering parameterisation ``env_id``'s task defaults to (the
    full latent, ``None``, for ids that are not ``LPDS-*`` ids and for tasks without one)."""
    if not (isinstance(latent_subspace, str) and latent_subspace == "default"):
        return latent_subspace
    if not isinstance(env_id, str) or not env_id.startswith("LPDS-") or env_id not in gym.registry:
        return None
    name = _task_name(env_id)
    return TASKS[name].latent_subspace if name is not None else None


def make_steering_env(
    task: str,
    backbone: str | None = None,
    latent_bound: float | None | str = "default",
    device: str | torch.device = "cpu",
    decoder: Decoder | None = None,
    latent_subspace: Any = "default",
    **task_kwargs: Any,
) -> gym.Env:
    """Entry point of every ``LPDS-*-v0`` id: a :class:`~lpds_envs.wrappers.LatentSteeringWrapper`, in a
    ``TimeLimit`` of :func:`latent_horizon` latent steps when the raw task has a step limit, so that
    ``env.spec.max_episode_steps`` counts the steps the agent takes (chunks), not raw env steps. Likewise
    ``env.metadata["render_fps"]`` is the raw frame rate divided by the chunk length: ``render()`` gives one frame
    per latent step, so ``RecordVideo`` on this env writes real-time videos with the chunk's last frames.

    :param task: key of :data:`TASKS`
    :param backbone: ``"diffusion"`` or ``"flow"`` (the task's default when ``None``), or a saved decoder's folder
    :param latent_bound: latent box bound (``None`` = unbounded; default: the task's)
    :param device: where the decoder runs
    :param decoder: use this decoder instead of the shipped one
    :param latent_subspace: exact-prior subspace steering (``"chunk_constant"``, or ``"repeat"`` for DSRL-pi0's
        repeated noise), see :class:`~lpds_envs.wrappers.LatentSteeringWrapper`; ``"default"`` takes the task's
        (``chunk_constant`` for LIBERO, else the full latent); ``None`` steers the full latent
    :param task_kwargs: passed to ``gym.make`` of the raw task (e.g. ``render_mode``), over the task's defaults
        (robomimic ids: ``reward_offset=1``, DSRL's ``-1`` per step until success)
    """
    spec = _task(task)
    _require_extra(spec)
    dec = decoder if decoder is not None else task_decoder(task, backbone, device)
    env = gym.make(spec.raw_id, **{**spec.raw_kwargs, **task_kwargs})
    bound = spec.latent_bound if latent_bound == "default" else latent_bound
    if isinstance(bound, str):
        raise ValueError(f"latent_bound must be a number, None or 'default', got {bound!r}")
    if isinstance(latent_subspace, str) and latent_subspace == "default":
        latent_subspace = spec.latent_subspace
    wrapped = LatentSteeringWrapper(env, dec, latent_bound=bound, latent_subspace=latent_subspace)
    wrapped.spec_from_entry_point = True
    fps = env.metadata.get("render_fps")
    if fps is not None and dec.action_shape[0] > 1:
        # render() shows one frame per latent step (the chunk's last): video recorders above this env then play
        # in real time, at 1 / chunk of the raw frame rate; a recorder on the raw env keeps every frame
        wrapped.metadata = {**wrapped.metadata, "render_fps": fps / dec.action_shape[0]}
    horizon = latent_horizon(env.spec.max_episode_steps if env.spec is not None else None, dec.action_shape[0])
    if horizon is None:
        return wrapped
    # the raw TimeLimit ends the episode in latent step ceil(R / Ta) anyway; this one states it in the spec
    return gym.wrappers.TimeLimit(wrapped, horizon)


def latent_horizon(raw_max_episode_steps: int | None, chunk_size: int) -> int | None:
    """The episode limit in latent steps of a task limited to ``raw_max_episode_steps`` raw steps, executed in
    chunks of ``chunk_size``: ``ceil(raw / chunk)`` (``None`` when the raw task has no limit).

    ``LPDS-*`` ids report it as ``env.spec.max_episode_steps`` (e.g. 250 for ``LPDS-Hopper-v0``: 1000 raw steps in
    chunks of 4), so wrappers that read the horizon from the spec, such as sb3-contrib's ``TimeFeatureWrapper``,
    see the episode length the agent acts in.
    """
    if raw_max_episode_steps is None:
        return None
    return -(-int(raw_max_episode_steps) // int(chunk_size))


def _task_name(env_id: str) -> str | None:
    """The :data:`TASKS` key behind a registered steering id (``None`` for ids of other entry points)."""
    name = gym.spec(env_id).kwargs.get("task")
    return name if name in TASKS else None


def resolve_lpds_id(
    env_id: str, backbone: str | None = None, device: str | torch.device = "cpu", load_decoder: bool = True
) -> tuple[str, Decoder | None, float | None] | None:
    """For ``LPDS-<Task>-v<N>`` return ``(raw_id, shipped decoder, default latent bound)``; else ``None``.
    ``load_decoder=False`` skips loading the shipped backbone (the caller brings its own): the decoder is ``None``."""
    if not env_id.startswith("LPDS-"):
        return None
    name = _task_name(env_id)  # gym.spec raises a clear gymnasium error for unknown ids
    if name is None:
        return None
    task = TASKS[name]
    return task.raw_id, task_decoder(name, backbone, device) if load_decoder else None, task.latent_bound


def raw_task_kwargs(env_id: str) -> dict[str, Any]:
    """The raw-task ``gym.make`` defaults of an ``LPDS-<Task>-v<N>`` id (e.g. robomimic's ``reward_offset=1``), which
    every way of building the task applies under the caller's kwargs; ``{}`` for other ids."""
    if not env_id.startswith("LPDS-") or env_id not in gym.registry:
        return {}
    name = _task_name(env_id)
    return dict(TASKS[name].raw_kwargs) if name is not None else {}


def register_all() -> None:
    """Register every raw and steering id (idempotent)."""
    raw = {
        "lpds/MultiGoal-v0": ("lpds_envs.envs.multigoal:MultiGoalEnv", 20),
        "lpds/MultiGoalPixels-v0": ("lpds_envs.envs.multigoal_pixels:MultiGoalPixelsEnv", 20),
        "lpds/Avoiding-v0": ("lpds_envs.envs.avoiding:AvoidingEnv", 250),  # D3IL's max_steps_per_episode
    }
    for env_id, (entry, steps) in raw.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry, max_episode_steps=steps)
    for env_id, adroit_task in ADROIT_RAW_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="lpds_envs.envs.adroit:make_adroit_task",
                max_episode_steps=200,
                kwargs={"task": adroit_task},
            )
    for env_id, rm_task in ROBOMIMIC_RAW_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="lpds_envs.envs.robomimic:make_robomimic_task",
                max_episode_steps=ROBOMIMIC_TASKS[rm_task].max_episode_steps,
                kwargs={"task": rm_task},
            )
    for env_id, libero_task in LIBERO_RAW_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="lpds_envs.envs.libero:make_libero_task",
                max_episode_steps=LIBERO_TASKS[libero_task].max_episode_steps,
                kwargs={"task": libero_task},
            )
    # Franka Panda tasks in robotic's simulator (the franka extra, imported when an env is made), 10 Hz control;
    # nondeterministic: an episode repeated after a seeded reset agrees to ~1e-5, not bit for bit (PhysX caches)
    for env_id, (entry, steps) in FRANKA_RAW_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry, max_episode_steps=steps, nondeterministic=True)
    for name in TASKS:
        env_id = f"LPDS-{name}-v0"
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="lpds_envs.registration:make_steering_env",
                vector_entry_point="lpds_envs.vector:make_steering_vector_env",  # one batched decode (make_vec)
                kwargs={"task": name},
                # as their raw tasks: a repeated episode agrees to ~1e-5, not bit for bit (robotic's PhysX caches)
                nondeterministic=TASKS[name].raw_id in FRANKA_RAW_IDS,
            )
