"""What a training run is made of: the algorithm registry, hyperparameters and the run's ``config.yaml``.

Hyperparameters are resolved in RL Zoo's order: the shipped preset of the algorithm for the env
(``algorithms/hyperparams/<preset>.yml``), then the ablation's fixed settings, then ``--hyperparams FILE``, then
``--set key=value`` (dotted keys reach into dicts: ``policy_kwargs.net_arch=[64,64]``). Besides the learner's
constructor arguments a preset may hold ``policy`` (default ``MlpPolicy``), ``n_envs`` (default 1) and
``env_kwargs`` (passed to :func:`~lpds_envs.vector.make_latent_vec_env`: ``latent_bound``, ``backbone``,
``latent_subspace`` (``chunk_constant``, ``repeat`` or ``null`` for the full latent; default the task's),
``env_kwargs`` for the task itself).
"""

from __future__ import annotations

import copy
import inspect
import itertools
import sys
import warnings
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import stable_baselines3
import torch
import yaml
from gymnasium.wrappers import RecordVideo
from stable_baselines3.common.env_util import make_vec_env

from algorithms.presets import deep_merge, get_preset, lpds_settings
from algorithms.registry import ALGORITHMS, AlgoSpec
from algorithms.residual_action import ResidualActionWrapper

from .. import __version__
from ..registration import TASKS, default_subspace, raw_task_kwargs, resolve_lpds_id
from ..vector import make_latent_vec_env
from ..wrappers import ChunkedActionWrapper

CONFIG_FILE = "config.yaml"


class UsageError(ValueError):
    """A user mistake; the CLI prints the one-line message (what was wrong, what to do) and exits with code 2."""


#: keys a preset may hold besides the learner's constructor arguments
RUN_KEYS = ("policy", "n_envs", "env_kwargs")
#: constructor arguments the run sets itself
_RESERVED = {"self", "policy", "env", "seed", "device", "verbose", "tensorboard_log", "decoder", "_init_setup_model"}
ENV_KWARGS = {
    "latent": ("latent_bound", "backbone", "latent_subspace", "env_kwargs"),
    "residual": ("backbone", "env_kwargs"),
    "chunked": ("backbone", "env_kwargs"),
}
SET_HELP = "use --set key=value with a YAML value, e.g. --set delta=0.1 or --set policy_kwargs.net_arch=[64,64]"


def get_algo(name: str) -> AlgoSpec:
    """The registered algorithm ``name`` (:data:`algorithms.registry.ALGORITHMS`); a :class:`UsageError` otherwise."""
    if name not in ALGORITHMS:
        raise UsageError(f"unknown algorithm {name!r}; pass --algo one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def check_env_id(env_id: str) -> None:
    """Raise :class:`UsageError` unless ``env_id`` is a registered ``LPDS-<Task>-v0`` steering id."""
    known = sorted(k for k in gym.registry if k.startswith("LPDS-"))
    if env_id not in gym.registry:
        raise UsageError(f"unknown env id {env_id!r}; pass --env one of {', '.join(known)}")
    if gym.spec(env_id).kwargs.get("task") not in TASKS:
        raise UsageError(
            f"{env_id!r} is not an LPDS steering id (LPDS-<Task>-v0); pass --env one of {', '.join(known)}"
        )


def parse_value(text: str) -> Any:
    """A ``--set`` value as YAML (``0.1``, ``true``, ``null``, ``[64, 64]``, ``{a: 1}``)."""
    return yaml.safe_load(text) if text.strip() else ""


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``["delta=0.1", "policy_kwargs.net_arch=[64,64]"]`` -> ``{"delta": 0.1, "policy_kwargs": {"net_arch": [64, 64]}}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise UsageError(f"malformed --set {item!r}: expected key=value; {SET_HELP}")
        try:
            value = parse_value(text)
        except yaml.YAMLError as exc:
            reason = str(exc).splitlines()[0]
            raise UsageError(f"malformed --set {item!r}: the value is not valid YAML ({reason}); {SET_HELP}") from None
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p.strip(), {})
            if not isinstance(node, dict):
                raise UsageError(f"malformed --set {item!r}: {p!r} was already set to a value; {SET_HELP}")
        node[parts[-1].strip()] = value
    return out


def load_hyperparams_file(path: str | Path, env_id: str) -> dict[str, Any]:
    """An RL-Zoo-style file (``{env_id: {...}}``, the entry of ``env_id`` is used) or a flat dict of settings; RL Zoo's
    ``n_timesteps`` is ignored (the budget is ``--steps``, :func:`~algorithms.presets.lpds_settings`)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"hyperparameter file {str(path)!r} not found; pass --hyperparams an existing .yml file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a mapping (env id -> settings, or settings); fix the file")
    if env_id in data:
        return lpds_settings(dict(data[env_id] or {}))
    env_like = [k for k in data if isinstance(k, str) and "-v" in k and isinstance(data[k], dict)]
    if env_like:
        raise UsageError(f"{path} has entries for {env_like} but none for {env_id!r}; add an {env_id}: entry")
    return lpds_settings(data)


def resolve_hyperparams(
    spec: AlgoSpec, env_id: str, hyperparams_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Preset < ablation < file < overrides, checked against the learner's signature (see the module docstring)."""
    hp = deep_merge(get_preset(spec.preset, env_id), spec.fixed)
    if spec.env_type == "residual":  # LP-DS-A shares LP-DS's preset minus what only latent steering has
        hp.pop("latent_critic_steps", None)
        hp["env_kwargs"] = {k: v for k, v in (hp.get("env_kwargs") or {}).items() if k != "latent_bound"}
    if hyperparams_file is not None:
        hp = deep_merge(hp, load_hyperparams_file(hyperparams_file, env_id))
    hp = deep_merge(hp, overrides or {})
    validate_hyperparams(spec, hp)
    return hp


def learner_params(spec: AlgoSpec) -> list[str]:
    params = inspect.signature(spec.cls.__init__).parameters
    return [p for p in params if p not in _RESERVED and params[p].kind is not inspect.Parameter.VAR_KEYWORD]


def learner_defaults(spec: AlgoSpec, hyperparams: dict[str, Any]) -> dict[str, Any]:
    """The learner's defaults for the arguments ``hyperparams`` leaves unset (recorded so runs stay readable when
    defaults change between versions)."""
    params = inspect.signature(spec.cls.__init__).parameters
    out = {}
    for name in learner_params(spec):
        default = params[name].default
        if name not in hyperparams and default is not inspect.Parameter.empty:
            out[name] = default if isinstance(default, (int, float, str, bool, type(None))) else repr(default)
    return out


def validate_hyperparams(spec: AlgoSpec, hp: dict[str, Any]) -> None:
    valid = learner_params(spec)
    unknown = [k for k in hp if k not in valid and k not in RUN_KEYS]
    if unknown:
        raise UsageError(
            f"unknown hyperparameter {unknown[0]!r} for {spec.name} ({spec.cls.__name__}); "
            f"fix --set/--hyperparams; valid keys: {', '.join([*valid, *RUN_KEYS])}"
        )
    env_kwargs = hp.get("env_kwargs") or {}
    if not isinstance(env_kwargs, dict):
        raise UsageError(f"env_kwargs must be a mapping, got {env_kwargs!r}; e.g. --set env_kwargs.latent_bound=1.5")
    allowed = ENV_KWARGS[spec.env_type]
    bad = [k for k in env_kwargs if k not in allowed]
    if bad:
        raise UsageError(f"unknown env_kwargs key {bad[0]!r} for {spec.name}; valid: {', '.join(allowed)}")
    n_envs = hp.get("n_envs", 1)
    if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
        raise UsageError(f"n_envs must be a positive integer, got {n_envs!r}; e.g. --set n_envs=4")


@dataclass
class RunConfig:
    """Everything one ``(algo, env, seed)`` run uses; written to ``<run_dir>/config.yaml``.

    :param algo: a key of :data:`algorithms.registry.ALGORITHMS`
    :param env_id: an ``LPDS-<Task>-v0`` id
    :param seed: the run's seed
    :param steps: budget in raw env steps (one executed action = one step)
    :param out: the output root; the run lives in ``out/<env_id>/<name>/seed_<seed>``
    :param name: the variant's folder and plot label (default: ``algo``)
    :param hyperparams: the resolved hyperparameters (learner kwargs plus ``policy``/``n_envs``/``env_kwargs``)
    :param eval_freq: evaluate every this many raw env steps (and at 0 and at the end)
    :param eval_episodes: episodes per evaluation (one batched sub-env each)
    :param eval_deterministic: evaluation policy (default: the algorithm's, see :class:`AlgoSpec`)
    :param eval_entropy_states: also measure the steered policy's action entropy (paper eq. 11) at each evaluation,
        at this many states drawn from the evaluation's episodes (0: off; latent learners only), for Fig. 5/6-style
        entropy curves; it runs under its own RNG streams, so it never changes what is learned
    :param eval_entropy_samples: policy samples per probe state for that entropy
    :param checkpoint_freq: checkpoint every this many raw env steps (and at the end)
    :param save_replay_buffer: include the replay buffer in checkpoints (needed for an exact resume)
    :param device: torch device of the learner and the decoder
    :param learner_defaults: the learner's defaults of the arguments not in ``hyperparams`` (filled in)
    :param track: also log to ``"tensorboard"`` or ``"wandb"`` (:mod:`lpds_envs.experiment.tracking`; ``None``: the
        CSV log, plus TensorBoard when it is installed)
    :param wandb_project: the W&B project of ``track="wandb"`` (default ``WANDB_PROJECT``, else ``lpds``)
    """

    algo: str
    env_id: str
    seed: int
    steps: int
    out: str
    name: str = ""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    eval_freq: int = 0
    eval_episodes: int = 10
    eval_deterministic: bool | None = None
    eval_entropy_states: int = 0
    eval_entropy_samples: int = 64
    checkpoint_freq: int = 0
    save_replay_buffer: bool = True
    device: str = "auto"
    overrides: dict[str, Any] = field(default_factory=dict)
    hyperparams_file: str | None = None
    command: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    learner_defaults: dict[str, Any] = field(default_factory=dict)
    track: str | None = None
    wandb_project: str | None = None

    #: settings that must match for a re-run to resume an existing run folder
    IDENTITY = ("algo", "env_id", "seed", "hyperparams", "eval_deterministic")  # one evaluation policy per curve

    def __post_init__(self) -> None:
        self.hyperparams = copy.deepcopy(self.hyperparams)  # SB3 writes into policy_kwargs; runs share none
        self.name = self.name or self.algo
        if self.steps < 1:
            raise UsageError(f"--steps must be >= 1, got {self.steps}")
        self.eval_freq = self.eval_freq or max(1, self.steps // 20)
        self.checkpoint_freq = self.checkpoint_freq or self.eval_freq
        if self.eval_entropy_states < 0 or self.eval_entropy_samples < 2:
            raise UsageError(
                f"--eval-entropy-states must be >= 0 and --eval-entropy-samples >= 2, got "
                f"{self.eval_entropy_states} and {self.eval_entropy_samples}"
            )
        if self.eval_entropy_states and get_algo(self.algo).env_type == "residual":
            raise UsageError(
                f"--eval-entropy-states measures the action entropy of a latent learner or a fine-tuning baseline; "
                f"{self.algo} adds residual actions to the backbone's chunks, which it does not cover: drop the option"
            )
        if self.eval_deterministic is None:
            self.eval_deterministic = get_algo(self.algo).eval_deterministic
        self.versions = self.versions or _versions()
        self.learner_defaults = self.learner_defaults or learner_defaults(self.spec, self.hyperparams)

    @property
    def spec(self) -> AlgoSpec:
        return get_algo(self.algo)

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.env_id / self.name / f"seed_{self.seed}"

    @property
    def n_envs(self) -> int:
        return int(self.hyperparams.get("n_envs", 1))

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return dict(self.hyperparams.get("env_kwargs") or {})

    @property
    def learner_kwargs(self) -> dict[str, Any]:
        """The learner's constructor arguments (a deep copy: SB3 adds keys to the ``policy_kwargs`` it is given)."""
        return copy.deepcopy({k: v for k, v in self.hyperparams.items() if k not in RUN_KEYS})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path is not None else self.run_dir / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None))
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_FILE
        if not path.is_file():
            raise UsageError(f"{path} not found; pass a run folder written by `lpds train` or `lpds sweep`")
        data = yaml.safe_load(path.read_text())
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def mismatch(self, other: RunConfig) -> str | None:
        """A description of the first identity setting that differs from ``other``, or ``None``."""
        for key in self.IDENTITY:
            a, b = getattr(other, key), getattr(self, key)
            if a == b:
                continue
            if isinstance(a, dict) and isinstance(b, dict):
                for k in sorted(set(a) | set(b)):
                    if a.get(k, "<unset>") != b.get(k, "<unset>"):
                        return f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}"
            return f"{key}: {a!r} -> {b!r}"
        return None


def _versions() -> dict[str, str]:
    return {
        "lpds": __version__,
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "stable_baselines3": str(stable_baselines3.__version__),
        "gymnasium": str(gym.__version__),
    }


def make_run_env(
    spec: AlgoSpec,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    n_envs: int = 1,
    seed: int | None = None,
    device: str = "cpu",
    decoder: Any = None,
    video_dir: str | Path | None = None,
    video_envs: int = 0,
):
    """The SB3 VecEnv a learner of ``spec`` trains (or is evaluated) on.

    Latent learners get :func:`~lpds_envs.vector.make_latent_vec_env`'s env (the task's shipped backbone, its
    latent bound unless ``env_kwargs["latent_bound"]`` says otherwise); LP-DS-A gets the task in a
    :class:`~algorithms.ResidualActionWrapper`; the fine-tuning baselines (``env_type == "chunked"``) the task in a
    :class:`~lpds_envs.wrappers.ChunkedActionWrapper` of the backbone's chunk size (pass them the backbone with
    :func:`learner_env_kwargs`). Sub-envs are Monitor-ed on raw env steps.

    :param decoder: reuse this frozen decoder (else the shipped one is loaded)
    :param video_dir: record the first episode of the first ``video_envs`` sub-envs there (``RecordVideo``)
    """
    kw = dict(env_kwargs or {})
    allowed = ENV_KWARGS[spec.env_type]
    unknown = sorted(set(kw) - set(allowed))
    if unknown:  # a raw-task keyword at the top level would otherwise be dropped without a word
        raise UsageError(
            f"unknown env_kwargs key(s) {unknown} for {spec.name} on {env_id}: the steering keys are "
            f"{', '.join(k for k in allowed if k != 'env_kwargs')}; keywords of the raw task go under 'env_kwargs', "
            f"e.g. {{'env_kwargs': {{{unknown[0]!r}: ...}}}} (--set env_kwargs.env_kwargs.{unknown[0]}=...)"
        )
    resolved = resolve_lpds_id(env_id, backbone=kw.get("backbone"), device=device, load_decoder=decoder is None)
    if resolved is None:
        raise UsageError(f"{env_id!r} is not an LPDS steering id (LPDS-<Task>-v0); pass one to --env")
    raw_id, shipped, task_bound = resolved
    decoder = shipped if decoder is None else decoder
    task_kwargs = {**raw_task_kwargs(env_id), **(kw.get("env_kwargs") or {})}  # as gym.make(env_id) builds it
    counter = itertools.count()

    def factory(**kwargs: Any) -> gym.Env:
        i = next(counter)
        if video_dir is None:
            return gym.make(raw_id, **kwargs)
        # every sub-env renders rgb_array (a VecEnv needs one render mode); only the first video_envs record
        env = gym.make(raw_id, render_mode="rgb_array", **kwargs)
        if i >= video_envs:
            return env
        with warnings.catch_warnings():  # the folder is shared by the recorders (lpds evaluate notes old videos)
            warnings.filterwarnings("ignore", message=".*Overwriting existing videos.*")
            return RecordVideo(env, str(video_dir), episode_trigger=lambda ep: ep == 0, name_prefix=f"{env_id}-env{i}")

    if spec.env_type == "latent":
        bound = kw.get("latent_bound", task_bound)
        return make_latent_vec_env(
            factory,
            n_envs=n_envs,
            seed=seed,
            decoder=decoder,
            latent_bound=bound,
            env_kwargs=task_kwargs,
            latent_subspace=default_subspace(env_id, kw.get("latent_subspace", "default")),
        )
    if spec.env_type == "chunked":  # the fine-tuning baselines act with chunks; they get the backbone as decoder=
        wrapper: Any = partial(ChunkedActionWrapper, chunk_size=decoder.chunk_size)
    else:
        wrapper = partial(ResidualActionWrapper, decoder=decoder)
    return make_vec_env(factory, n_envs=n_envs, seed=seed, env_kwargs=task_kwargs, wrapper_class=wrapper)


def learner_env_kwargs(spec: AlgoSpec, decoder: Any) -> dict[str, Any]:
    """Constructor arguments a learner of ``spec`` needs besides its hyperparameters: the backbone (``decoder=``) for
    the fine-tuning baselines, whose chunked env carries none; nothing for the others (their env has it)."""
    return {"decoder": decoder} if spec.env_type == "chunked" else {}
