"""Names shared by the sweeper, the jobs it launches, reports and tests.

Files in the sweep directory, attributes stored on the study and its trials, and the environment a
launched job finds its trial in. Standard library only: Hydra's plugin scan imports this module.
"""

from __future__ import annotations

# Files in the sweep directory.
RESULTS_FILE = "optimization_results.yaml"  # the official Optuna sweeper's name and keys, plus ours
BEST_CONFIG_FILE = "best_config.yaml"  # the best trial's job config
FINAL_FILE = "final_evaluation.yaml"  # the incumbent (and baseline) retrained after the search
STORAGE_FILE = "optuna.db"  # the default storage: a SQLite file

# Trial user attributes.
OVERRIDES_ATTR = "overrides"  # the overrides that launched the trial (storage password redacted)
OUTPUT_DIR_ATTR = "output_dir"  # the job's Hydra output directory
FAIL_REASON_ATTR = "fail_reason"  # one line: why a FAIL trial failed
STOP_REASON_ATTR = "stop_reason"  # one line: why a job stopped its own trial (optuna.TrialPruned's text)
METRICS_ATTR = "metrics"  # what the job returned beside the objective (a mapping of scalars)
SURPLUS_ATTR = "surplus"  # asked for when another sweeper had just taken the last slot; never run
# {epoch: [value per objective]} of a multi-objective trial (Optuna's own per-step values take one).
VALUES_BY_EPOCH_ATTR = "values_by_epoch"
# Segments (see _study/scheduling.py): a configuration is trained by one trial or by several in a row.
CONFIG_ATTR = "config"  # the number of the configuration's first trial
BRACKET_ATTR = "bracket"  # its Hyperband bracket (0: the most aggressive)
RESUME_ATTR = "resume"  # a continuation's {"trial", "epoch", "path"}: the checkpoint it continues from
# The trial a segment takes over from (a paused one it continues, or one a fault ended that it retries).
# Every sweeper claims that step by creating such a trial; the lowest-numbered one that follows a trial
# is the claim that counts, the others never run (see _running/claims.py).
FOLLOWS_ATTR = "follows"
# Why a trial ended without an outcome of its own: FAULT_STALE (its sweeper stopped beating),
# FAULT_INTERRUPTED (Ctrl-C) or FAULT_WORKER (the launcher failed: a worker process died, a job was
# cancelled). Its configuration is retried from where that trial started.
FAULT_ATTR = "fault"
FAULT_STALE, FAULT_INTERRUPTED, FAULT_WORKER = "stale", "interrupted", "worker"
CHECKPOINT_ATTR = "checkpoint"  # {"epoch", "path"}: the last checkpoint the job saved
PAUSED_ATTR = "paused"  # {"epoch", "path"}: a segment that paused at a rung with that checkpoint

# Trial system attributes (not shown by dashboards).
HEARTBEAT_ATTR = "bohb:heartbeat"  # {"by", "n", "at"}: changes at every beat of a running trial's sweeper

# Study system attributes: one key per paused trial whose checkpoint a finished sweep discarded (its
# configuration will not be resumed; a later sweep of the study ranks it but never promotes it).
DISCARDED_PREFIX = "bohb:discarded:"

# Study user attributes.
PRUNER_ATTR = "pruner_config"  # what versions before schedulers stored: the pruner's `_target_` config
SCHEDULER_ATTR = "scheduler"  # _scheduling.Scheduler.record(): its public name and settings
SEARCH_SPACE_ATTR = "search_space"
OBJECTIVE_ATTR = "objective"  # the objective's key (a list with several), when the job returns a mapping

# Trial states as written in results files and W&B summaries.
COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"

# Who a launched job is: one of the study's trials, or an evaluation after the search: a candidate
# retrained for the final pick, the final evaluation of the pick (its test), or the baseline.
TRIAL, CANDIDATE, FINAL, BASELINE = "trial", "candidate", "final", "baseline"
CHECKPOINTS_DIR = "checkpoints"  # in the sweep directory: one folder per paused configuration

# The environment of a launched job (set through `hydra.job.env_set`, so every launcher passes it on
# and the app declares nothing). Absent outside a sweep.
ENV_STUDY = "HYDRA_BOHB_STUDY"
ENV_STORAGE = "HYDRA_BOHB_STORAGE"  # the storage URL, its password redacted
ENV_TRIAL = "HYDRA_BOHB_TRIAL"  # the trial number; absent for evaluations after the search
ENV_CONFIG = "HYDRA_BOHB_CONFIG"  # the configuration of a trial or a candidate (its first trial's number)
ENV_ROLE = "HYDRA_BOHB_ROLE"  # TRIAL, CANDIDATE, FINAL or BASELINE
ENV_BUDGET = "HYDRA_BOHB_BUDGET"  # epochs of a full trial: a trial that reaches it is never pruned
ENV_CHECKPOINTS = "HYDRA_BOHB_CHECKPOINTS"  # where a trial saves the checkpoint it pauses with
ENV_SAVE_MODEL = "HYDRA_BOHB_SAVE_MODEL"  # where a final candidate saves its trained model
ENV_LOAD_MODEL = "HYDRA_BOHB_LOAD_MODEL"  # the model the final evaluation tests (the pick's)
# The storage URL with its password, exported by the sweeper only (never written to a file); jobs
# inherit it from the sweeper's process environment.
ENV_STORAGE_SECRET = "HYDRA_BOHB_STORAGE_URL"
