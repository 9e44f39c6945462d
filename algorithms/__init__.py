"""SB3-compatible latent-steering learners.

- :class:`LagrangianSAC`: LP-DS (paper Algorithm 1).
- :class:`DSRLNA`: DSRL with noise aliasing.
- DSRL-SAC is plain ``stable_baselines3.SAC("MlpPolicy", latent_env)``; :class:`DSRLSAC` is the same learner with
  the reference code's warm-up on the backbone's prior latents (what ``lpds train --algo dsrl`` runs).
- :class:`DSRLTQC`, :class:`DSRLCrossQ`: sb3-contrib's TQC and CrossQ on the latent env with the same warm-up
  (``lpds train --algo dsrl-tqc`` / ``dsrl-crossq``).
- :class:`DPPO`: the fine-tuning baseline; it acts on the chunked raw task and trains a copy of the diffusion
  backbone (``fine_tuned_decoder()``), with the shared pieces in :mod:`algorithms.finetune`.
- :class:`IDQL`, :class:`DQL`: fine-tuning baselines that train a copy of a diffusion backbone on the chunked raw
  env (``ChunkedActionWrapper``); ``fine_tuned_decoder()`` returns the adapted policy as a ``DiffusionDecoder``.

``"MultiInputPolicy"`` (SB3's ``CombinedExtractor``) takes Dict observations such as camera images + state.
"""

from .buffers import LatentDictReplayBuffer, LatentReplayBuffer
from .deployed import DeployedPolicy, load_steered_policy
from .dppo import DPPO
from .dppo_policy import DPPOPolicy
from .dql import DQL
from .dsrl_contrib import DSRLTQC, DSRLCrossQ
from .dsrl_na import DSRLNA
from .dsrl_sac import DSRLSAC
from .export import ExportResult, export_steered_policy
from .faults import NonFiniteError
from .idql import IDQL
from .lagrangian_sac import LagrangianSAC
from .policies import (
    DSRLNAPolicy,
    MlpPolicy,
    MultiInputDSRLNAPolicy,
    MultiInputPolicy,
    MultiInputSteeringPolicy,
    SteeringPolicy,
)
from .residual_action import ResidualActionSAC, ResidualActionWrapper
from .steering import SteeredPolicy, SteeringAlgorithm

__all__ = [
    "DPPO",
    "DeployedPolicy",
    "DPPOPolicy",
    "DQL",
    "DSRLNA",
    "DSRLNAPolicy",
    "DSRLSAC",
    "DSRLCrossQ",
    "DSRLTQC",
    "ExportResult",
    "IDQL",
    "LagrangianSAC",
    "NonFiniteError",
    "ResidualActionSAC",
    "ResidualActionWrapper",
    "LatentDictReplayBuffer",
    "LatentReplayBuffer",
    "MlpPolicy",
    "MultiInputDSRLNAPolicy",
    "MultiInputPolicy",
    "MultiInputSteeringPolicy",
    "SteeredPolicy",
    "SteeringAlgorithm",
    "SteeringPolicy",
    "export_steered_policy",
    "load_steered_policy",
]
