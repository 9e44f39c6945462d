"""The algorithm registry: every learner ``lpds train --algo NAME``, :func:`algorithms.presets.make_algorithm` and the
evaluation tools know, with its preset and the env it acts on.

Example::

    >>> from algorithms.registry import ALGORITHMS, get_algorithm
    >>> sorted(ALGORITHMS)[:5]
    ['dppo', 'dql', 'dsrl', 'dsrl-crossq', 'dsrl-na']
    >>> spec = get_algorithm("lpds")
    >>> spec.cls.__name__, spec.preset, spec.counts_raw_steps
    ('LagrangianSAC', 'lpds', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .dppo import DPPO
from .dql import DQL
from .dsrl_contrib import DSRLTQC, DSRLCrossQ
from .dsrl_na import DSRLNA
from .dsrl_sac import DSRLSAC
from .idql import IDQL
from .lagrangian_sac import LagrangianSAC
from .residual_action import ResidualActionSAC


@dataclass(frozen=True)
class AlgoSpec:
    """How an algorithm name maps onto a learner, a preset and an env.

    :param name: the CLI name (``lpds train --algo NAME``)
    :param cls: the learner class
    :param preset: stem of the preset file in ``algorithms/hyperparams``
    :param fixed: settings forced on top of the preset (ablations); ``--set`` can still change them
    :param env_type: ``"latent"`` (the action is the decoder's noise), ``"residual"`` (LP-DS-A, the action is a
        residual on the decoded chunk) or ``"chunked"`` (the fine-tuning baselines: the action is the chunk itself, on
        the raw task in a :class:`~lpds_envs.wrappers.ChunkedActionWrapper`; the learner gets the backbone as
        ``decoder=``)
    :param eval_deterministic: evaluate with the deterministic policy (default False, as the DSRL reference code's
        ``deterministic_eval: False`` that the paper's protocol follows: LP-DS acts with ``eps + Delta(s)``, DSRL with
        a sampled latent)
    :param summary: one line for ``--help``
    """

    name: str
    cls: type
    preset: str
    fixed: dict[str, Any] = field(default_factory=dict)
    env_type: str = "latent"
    eval_deterministic: bool = False
    summary: str = ""

    @property
    def counts_raw_steps(self) -> bool:
        """Whether the learner counts raw env steps itself (``model.raw_env_steps``): the steering learners and the
        fine-tuning baselines do (class attribute ``counts_raw_steps = True``); SB3's SAC and
        :class:`~algorithms.DSRLSAC` do not (:class:`~lpds_envs.evaluation.RawStepCallback` counts for them)."""
        return learner_counts_raw_steps(self.cls)


def learner_counts_raw_steps(learner: Any) -> bool:
    """Whether a learner class (or instance) counts raw env steps itself: it sets ``counts_raw_steps = True``."""
    return bool(getattr(learner, "counts_raw_steps", False))


_NO_LAGRANGIAN = {"use_lagrangian": False, "alpha_init": 0.0}

#: every registered algorithm by name
ALGORITHMS: dict[str, AlgoSpec] = {
    spec.name: spec
    for spec in (
        AlgoSpec("lpds", LagrangianSAC, "lpds", summary="LP-DS (LagrangianSAC)"),
        AlgoSpec(
            "dsrl",
            DSRLSAC,
            "dsrl",
            summary="DSRL-SAC (SB3 SAC on the latent env, warmed up on the prior as the DSRL code does)",
        ),
        AlgoSpec("dsrl-na", DSRLNA, "dsrl-na", summary="DSRL-NA"),
        AlgoSpec(
            "dsrl-pi0",
            DSRLSAC,
            "dsrl",
            fixed={"env_kwargs": {"latent_subspace": "repeat"}},
            summary="DSRL-SAC on DSRL-pi0's repeated noise (one noise row repeated over the chunk); reads the dsrl preset",
        ),
        AlgoSpec(
            "dsrl-tqc",
            DSRLTQC,
            "dsrl-tqc",
            summary="DSRL-TQC (sb3-contrib TQC on the latent env, DSRL's prior warm-up)",
        ),
        AlgoSpec(
            "dsrl-crossq",
            DSRLCrossQ,
            "dsrl-crossq",
            summary="DSRL-CrossQ (sb3-contrib CrossQ on the latent env, DSRL's prior warm-up)",
        ),
        AlgoSpec(
            "lpds-a",
            ResidualActionSAC,
            "lpds",
            env_type="residual",
            eval_deterministic=True,
            summary="LP-DS-A (residual in action space, Q^A only); reads the lpds preset",
        ),
        AlgoSpec(
            "lpds-no-lagrangian",
            LagrangianSAC,
            "lpds",
            fixed=_NO_LAGRANGIAN,
            summary="ablation: alpha fixed at 0",
        ),
        AlgoSpec(
            "lpds-no-lagrangian-no-bound",
            LagrangianSAC,
            "lpds",
            fixed={**_NO_LAGRANGIAN, "env_kwargs": {"latent_bound": None}},
            summary="ablation: alpha fixed at 0 and an unbounded latent box",
        ),
        AlgoSpec(
            "dppo",
            DPPO,
            "dppo",
            env_type="chunked",
            eval_deterministic=True,
            summary="DPPO (fine-tunes a copy of the diffusion backbone with PPO over env and denoising steps)",
        ),
        AlgoSpec(
            "idql",
            IDQL,
            "idql",
            env_type="chunked",
            eval_deterministic=True,
            summary="IDQL (IQL critics select among chunks sampled from a fine-tuned copy of the diffusion backbone)",
        ),
        AlgoSpec(
            "dql",
            DQL,
            "dql",
            env_type="chunked",
            eval_deterministic=True,
            summary="DQL / Diffusion-QL (diffusion BC loss plus a Q term through the denoising chain of a copy)",
        ),
    )
}


def get_algorithm(name: str) -> AlgoSpec:
    """The :class:`AlgoSpec` of ``name``; a ``ValueError`` naming the known ones otherwise."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; pass one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]
