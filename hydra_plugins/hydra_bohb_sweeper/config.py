"""The sweeper's config, registered as `hydra/sweeper: bohb` (with sampler and pruner groups).

With nothing set, the sweeper serves any Hydra app as the official Optuna sweeper does (its search-space
grammar, its `optimization_results.yaml`), and prunes jobs that report per-epoch values through
`hydra_plugins.hydra_bohb_sweeper.client`. What is specific to an app (the key of its epochs, its W&B
settings, its report and final evaluation) is set in the app's own config.
"""

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from hydra_plugins.hydra_bohb_sweeper import sampler_configs
from hydra_plugins.hydra_bohb_sweeper.sampler_configs import RandomSamplerConf, TPESamplerConf

__all__ = ["BOHBSweeperConf", "RandomSamplerConf", "TPESamplerConf", "register"]


@dataclass
class HyperbandPrunerConf:
    """Hyperband over epochs, promotion-based (pause and resume): rungs at min_resource *
    reduction_factor**k epochs below `hydra.sweeper.budget`. A trial that reaches a rung goes on only
    if it ranks in the top 1/reduction_factor of its bracket there; otherwise it pauses with a
    checkpoint and is resumed once it ranks so (see _study/scheduling.py). Jobs that cannot checkpoint are
    stopped instead. With several objectives, ranks are Pareto fronts, then crowding distance."""

    _target_: str = "hydra_plugins.hydra_bohb_sweeper._study.scheduling.Hyperband"
    min_resource: int = 1
    reduction_factor: int = 3
    # Brackets used, the most aggressive first (1: successive halving alone); null: every bracket but
    # the last, whose trials would train the whole budget unpruned.
    brackets: Optional[int] = None
    mode: str = "promotion"  # promotion: pause and resume | stopping: stop for good
    # Deprecated: the epochs of a full trial are hydra.sweeper.budget (this is read as it when set).
    max_resource: Optional[int] = None


@dataclass
class HyperbandStoppingPrunerConf(HyperbandPrunerConf):
    """Hyperband that stops trials for good (no checkpoints): for apps that cannot save their state."""

    mode: str = "stopping"


@dataclass
class NopPrunerConf:
    """Never prune: every trial trains the whole budget (TPE or random search alone)."""

    _target_: str = "hydra_plugins.hydra_bohb_sweeper._study.scheduling.NoPruning"
    max_resource: Optional[int] = None  # deprecated: hydra.sweeper.budget (read as it when set)


@dataclass
class FinalEvaluationConf:
    """After the search: retrain the best configurations with `overrides`, pick one by the objective
    (validation), and test that one only (and the baseline), with `test_overrides`."""

    enabled: bool = False
    overrides: list[str] = field(default_factory=list)
    # Candidates retrained: at most the top_k configurations of the search (the deepest rung first, then
    # the objective there). The best of them after retraining is the pick.
    top_k: int = 1
    # A configuration far behind the best is no candidate: at the deepest epoch it shares with the best,
    # it trails by more than max_gap times the median configuration's gap to the best at the first
    # rung (_outputs/candidates.py; 0.5: halfway from the best to the median). null: the top_k,
    # however far behind.
    max_gap: Optional[float] = 0.5
    # Added to the pick's test job and to the baseline (e.g. [evaluate_test=true]). A job that kept its
    # model (client.SweepJob.save_model) is tested without training again. []: no test job; the
    # candidates' own results stand.
    test_overrides: list[str] = field(default_factory=list)
    # Also run the job's default configuration (with the sweep's fixed overrides) the same way.
    baseline: bool = False
    # Added to the baseline's overrides: a baseline other than the job's defaults, e.g. the seed's CNN
    # for a sweep of another space ([model=cnn, optimizer=adam]).
    baseline_overrides: list[str] = field(default_factory=list)
    # Several objectives: front points whose first objective is within this of the best count as as
    # good (0.005: half a point of accuracy); the cheapest of them is retrained too.
    tolerance: float = 0.005


@dataclass
class BOHBSweeperConf:
    _target_: str = "hydra_plugins.hydra_bohb_sweeper.bohb_sweeper.BOHBSweeper"
    _recursive_: bool = False  # the sweeper instantiates sampler and pruner itself (and keeps their configs)
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "hyperband"}])

    sampler: Any = MISSING
    pruner: Any = MISSING
    # maximize | minimize, or a list of them: one per objective (a multi-objective study; Hyperband then
    # ranks trials by Pareto front and crowding distance). null: minimize for a new study, as the
    # official Optuna sweeper does, and a resumed study's own direction.
    direction: Any = None
    # What the job returns: null means a number (a list with several objectives); a key name (a list of
    # them) means a mapping holding the objective(s) under that key(s), whose other entries are recorded
    # on the trial as metrics.
    objective: Any = None
    # The study is resumed when it exists in `storage`: finished trials count towards n_trials.
    # null: the app's job name (hydra.job.name).
    study_name: Optional[str] = None
    # Any Optuna storage URL (sqlite:///..., postgresql://..., journal:///path); null: a SQLite file
    # `optuna.db` in the sweep directory.
    storage: Optional[str] = None
    # Trials in the study, counted over every sweeper that shares it (finished + running).
    n_trials: int = 20
    n_jobs: int = 1  # trials in flight; each worker starts its next trial as soon as one ends
    # Seconds between heartbeats of in-flight trials (every storage); a trial whose beat stops for 4 is
    # failed as stale by another sweeper and retried from where it started. null is refused: a killed
    # sweeper's trials would stay RUNNING for ever.
    heartbeat_interval: Optional[int] = 30
    # Epochs of a full trial: where Hyperband's rungs end, what the final evaluation's candidates are
    # ranked at, and what jobs read from HYDRA_BOHB_BUDGET. null: 27.
    budget: Optional[int] = None
    # The job config key that receives `budget` as an override (e.g. trainer.max_epochs); null: none.
    budget_key: Optional[str] = None
    # Stop (after at least `min_trials_for_failure_rate` finished trials) once the share of failed
    # trials exceeds this.
    max_failure_rate: float = 0.5
    min_trials_for_failure_rate: int = 5
    # A dotted path to a function that validates the composed job config before any trial runs
    # (bad fixed overrides fail fast, with no study created); null: no check.
    preflight_check: Optional[str] = None
    # A dotted path to a function (sweep_dir, study) -> {name: file} run at the end to write a report
    # (`study`: the open Optuna study, wherever its storage is); null: none.
    report: Optional[str] = None
    # Write figures of the study at the end (best so far, parameter importances, parallel coordinates;
    # the Pareto front with several objectives). false: none, which saves a few seconds of matplotlib,
    # plotly and the importance fit per sweep (many short sweeps, or optuna-dashboard instead).
    figures: bool = True
    # Where the job config keeps its W&B settings (project, entity, mode, dir, tags, init_kwargs); the
    # sweep's own W&B run uses them. null: no sweep run.
    tracking_key: Optional[str] = None
    # trials: the console shows the sweeper's own lines (one per trial); everything else goes to
    # sweep.log and the jobs' log files. full: everything, as Hydra prints it (so does hydra.verbose).
    console: str = "trials"
    final_evaluation: FinalEvaluationConf = field(default_factory=FinalEvaluationConf)
    params: dict[str, Any] = field(default_factory=dict)
    # child: "PARENT OP VALUE": the child parameter exists only in trials where the condition holds.
    conditions: dict[str, str] = field(default_factory=dict)
    # A dotted path to a function (cfg, trial) called after `params` are sampled, which may suggest
    # more parameters on the Optuna trial (define-by-run: a range that depends on another parameter);
    # each reaches the job as `name=value` (a name new to the job config starts with +).
    custom_search_space: Optional[str] = None
    # Deprecated (the official sweeper's 1.1 syntax): {name: {type, low, high, step, log, choices}};
    # use `params` instead. Read only when `params` is empty.
    search_space: Optional[dict[str, Any]] = None


def register() -> None:
    cs = ConfigStore.instance()
    provider = "hydra-bohb-sweeper"
    cs.store(group="hydra/sweeper", name="bohb", node=BOHBSweeperConf, provider=provider)
    sampler_configs.register(cs, provider)  # hydra/sweeper/sampler: tpe, random, cmaes, grid, ...
    for name, node in (
        ("hyperband", HyperbandPrunerConf),
        ("hyperband_stopping", HyperbandStoppingPrunerConf),
        ("none", NopPrunerConf),
        ("pareto_hyperband", HyperbandPrunerConf),  # its earlier name for several objectives
    ):
        cs.store(group="hydra/sweeper/pruner", name=name, node=node, provider=provider)


register()
