"""BOHB for Hydra: Optuna's samplers with Hyperband that pauses, resumes and stops trials while they
train, in any process.

Public: `bohb_sweeper` (the Sweeper Hydra finds), `config` and `sampler_configs` (the settings, as
dataclasses), `client` (what a job imports), `names` (files, attributes, environment), `analysis`
(reading a study back) and `wandb_mode`. The rest is private, grouped by what it does:

  _setup/          settings, search space, samplers, custom search spaces, the preflight check
  _study/          opening the study and its storage; the schedulers (who goes on, pauses or stops)
  _running/        the worker loop, the quota, what a job gets and returns, checkpoints, the console
  _outputs/        the end of a sweep: final evaluation, results file, figures, atomic files
  _integrations/   Lightning (the job's callback) and W&B (the sweep's own run)

The groups are folders without `__init__.py` (namespace packages): Hydra's plugin scan, which imports
every public module of the regular packages under `hydra_plugins` at each start, does not see them, so
starting an app never imports Optuna.
"""
