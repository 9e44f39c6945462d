"""The experiment runner (the top layer): the ``lpds`` command line (:mod:`~lpds_envs.experiment.cli`), run
configurations (:mod:`~lpds_envs.experiment.config`), resumable training runs (:mod:`~lpds_envs.experiment.runs`)
and their checkpoints (:mod:`~lpds_envs.experiment.checkpoint`), ``lpds evaluate``
(:mod:`~lpds_envs.experiment.evaluate`), Ray Tune sweeps (:mod:`~lpds_envs.experiment.sweep`), learning-curve plots
(:mod:`~lpds_envs.experiment.plotting`) and the README's demo (:mod:`~lpds_envs.experiment.demo`)."""
