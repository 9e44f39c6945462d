"""Offline zoo tooling: the pipelines that built the shipped backbones (scripted controllers and demonstrations, SAC
experts, behaviour cloning, evaluation, shipping). Run as ``python -m lpds_envs.backbones.zoo.<task family> ...``;
nothing a user imports depends on it."""
