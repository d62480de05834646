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
METRICS_ATTR = "metrics"  # what the job returned beside the objective (a mapping of scalars)
SURPLUS_ATTR = "surplus"  # asked for when another sweeper had just taken the last slot; never run
# {epoch: [value per objective]} of a multi-objective trial (Optuna's own per-step values take one).
VALUES_BY_EPOCH_ATTR = "values_by_epoch"

# Study user attributes.
PRUNER_ATTR = "pruner_config"  # the pruner's `_target_` config, so jobs prune as the sweeper does
SEARCH_SPACE_ATTR = "search_space"
OBJECTIVE_ATTR = "objective"  # the objective's key (a list with several), when the job returns a mapping

# Trial states as written in results files and W&B summaries.
COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"

# Who a launched job is: one of the study's trials, or an evaluation after the search.
TRIAL, FINAL, BASELINE = "trial", "final", "baseline"

# The environment of a launched job (set through `hydra.job.env_set`, so every launcher passes it on
# and the app declares nothing). Absent outside a sweep.
ENV_STUDY = "HYDRA_BOHB_STUDY"
ENV_STORAGE = "HYDRA_BOHB_STORAGE"  # the storage URL, its password redacted
ENV_TRIAL = "HYDRA_BOHB_TRIAL"  # the trial number; absent for evaluations after the search
ENV_ROLE = "HYDRA_BOHB_ROLE"  # TRIAL, FINAL or BASELINE
ENV_BUDGET = "HYDRA_BOHB_BUDGET"  # epochs of a full trial: a trial that reaches it is never pruned
# The storage URL with its password, exported by the sweeper only (never written to a file); jobs
# inherit it from the sweeper's process environment.
ENV_STORAGE_SECRET = "HYDRA_BOHB_STORAGE_URL"
