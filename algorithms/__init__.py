"""SB3-compatible steering learners (LagrangianSAC / LP-DS, DSRL-NA, LP-DS-A) arrive with their own issue.

Until then, DSRL-SAC is plain ``stable_baselines3.SAC("MlpPolicy", latent_env)`` on any latent env.
"""

__all__: list[str] = []
