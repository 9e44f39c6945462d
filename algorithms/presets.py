"""Per-env hyperparameter presets (``algorithms/hyperparams/<algo>.yml``), read by the Python API and the ``lpds``
CLI alike. The files are valid RL Zoo hyperparameter files too (``--conf-file``): every entry names RL Zoo's
``policy`` and ``n_timesteps``. ``n_timesteps`` is RL Zoo's budget in latent steps and only RL Zoo reads it
(``lpds train`` budgets in raw env steps, ``--steps``); :func:`get_preset` leaves both out (``MlpPolicy`` is the
default policy), so what ``lpds train`` records is the same as before they were added.

Example::

    >>> from algorithms.presets import get_preset
    >>> p = get_preset("lpds", "LPDS-AdroitHammer-v0")
    >>> p["delta"], p["gradient_steps"]
    (0.1, 10)

The latent box of each task is not repeated here: it is the task's own (:data:`lpds_envs.registration.TASKS`); a
preset sets ``env_kwargs.latent_bound`` only where it deliberately differs (DSRL's 1.5 on the toy).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from lpds_envs.vector import make_latent_vec_env

from .registry import get_algorithm
from .steering import SteeringAlgorithm

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
#: keys of a preset entry that only RL Zoo reads (its budget, in latent steps)
ZOO_ONLY_KEYS = ("n_timesteps",)
#: the policy a preset entry names for RL Zoo, which the learners use when none is given
DEFAULT_POLICY = "MlpPolicy"


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (PyYAML silently keeps the last one, which
    would let a stale preset block override or hide another). Merge keys (``<<: *anchor``) still override as usual."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN201 (PyYAML's signature)
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1}); "
                    "merge the two entries into one",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def available_algos() -> list[str]:
    return sorted(p.stem for p in HYPERPARAMS_DIR.glob("*.yml"))


def load_presets(algo: str) -> dict[str, dict[str, Any]]:
    """All presets of ``algo`` (``lpds``, ``dsrl``, ``dsrl-na``)."""
    path = HYPERPARAMS_DIR / f"{algo}.yml"
    if not path.is_file():
        raise ValueError(f"no presets for algorithm {algo!r}; available: {available_algos()}")
    return yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}


def lpds_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """A preset entry (or an RL Zoo hyperparameter entry) as ``lpds`` uses it: without RL Zoo's budget
    (:data:`ZOO_ONLY_KEYS`) and without ``policy`` when it names the default :data:`DEFAULT_POLICY`.

    :param entry: one env's settings
    """
    out = {k: v for k, v in entry.items() if k not in ZOO_ONLY_KEYS}
    if out.get("policy") == DEFAULT_POLICY:
        del out["policy"]
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``over``, dicts merged key by key at every depth (neither input is modified)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def get_preset(algo: str, env_id: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The preset of ``env_id`` for ``algo`` (empty when the env has none), with ``overrides`` merged on top
    (:func:`deep_merge`: nested dicts such as ``policy_kwargs`` and ``env_kwargs`` are merged key by key). RL Zoo's
    keys are left out (:func:`lpds_settings`)."""
    return deep_merge(lpds_settings(load_presets(algo).get(env_id, {})), overrides or {})


def make_algorithm(
    algo: str,
    env_id: str,
    n_envs: int | None = None,
    seed: int | None = None,
    overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> SteeringAlgorithm | OffPolicyAlgorithm:
    """Build the latent VecEnv and the learner of ``algo`` for ``env_id`` from its preset.

    ``algo`` is a latent learner of :data:`algorithms.registry.ALGORITHMS`: ``lpds`` (:class:`~algorithms.LagrangianSAC`),
    ``dsrl`` (:class:`~algorithms.DSRLSAC`: SB3 ``SAC`` on the latent env with the DSRL code's warm-up on prior
    latents), ``dsrl-na`` (:class:`~algorithms.DSRLNA`), ``dsrl-tqc`` / ``dsrl-crossq``
    (:class:`~algorithms.DSRLTQC`, :class:`~algorithms.DSRLCrossQ`: sb3-contrib's TQC / CrossQ) or an LP-DS ablation. Its preset, then the ablation's fixed
    settings, then ``overrides`` (:func:`deep_merge`); ``kwargs`` go to the learner. ``n_envs`` defaults to the
    preset's (1 when it has none); a preset's ``policy`` (default ``"MlpPolicy"``) is used.
    """
    try:
        spec = get_algorithm(algo)
    except ValueError as exc:
        raise ValueError(f"{exc} (make_algorithm builds the latent learners)") from None
    if spec.env_type == "chunked":
        raise ValueError(
            f"make_algorithm builds learners on the latent env; {algo!r} fine-tunes the backbone on the chunked task: "
            f"build it with `lpds train --algo {algo}` or {spec.cls.__name__}('MlpPolicy', chunked_env, decoder=backbone)"
        )
    if spec.env_type != "latent":
        raise ValueError(
            f"make_algorithm builds learners on the latent env; {algo!r} acts in action space: build it with "
            "`lpds train --algo lpds-a` or ResidualActionSAC on a ResidualActionWrapper env"
        )
    preset = deep_merge(deep_merge(get_preset(spec.preset, env_id), spec.fixed), overrides or {})
    env_kwargs = preset.pop("env_kwargs", {})
    preset_n_envs = preset.pop("n_envs", None)
    policy = preset.pop("policy", "MlpPolicy")
    venv = make_latent_vec_env(env_id, n_envs=n_envs or preset_n_envs or 1, seed=seed, **env_kwargs)
    return spec.cls(policy, venv, seed=seed, **{**preset, **kwargs})
