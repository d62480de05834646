"""What a pause and a resume cost, next to what any trial costs: seconds and checkpoint bytes.

Promotion-based Hyperband pauses a trial at a rung (the job saves a checkpoint and ends) and resumes it
later in a new job that loads the checkpoint. For the seed's baseline CNN and a large configuration of
the search space, on the quick preset's data (3000 training, 2000 validation images, one CPU thread):

  straight   one job that trains 2 epochs                            (the reference)
  paused     one job that trains epoch 1 and pauses with a checkpoint
  resumed    one job that loads that checkpoint and trains epoch 2
  one epoch  one job that trains 1 epoch (its time beyond the epoch is any trial's fixed cost)

Each job is the app's real `train()` with its real sweep identity: an Optuna study on SQLite holding the
scheduler the sweeper records (Hyperband, budget 2, a rung at epoch 1), the trial the sweeper would
create, and the checkpoint folder it would pass. A pause and resume costs (paused + resumed) - straight
seconds; the fixed cost of a trial is (one epoch) - (straight)/2. Medians of --repeats runs, with the
spread (min and max).

    python benchmarks/pause_resume.py                 # ~5 minutes on a 2-core CPU
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import common
import optuna
from omegaconf import DictConfig

from hydra_plugins.hydra_bohb_sweeper import client, names
from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling
from jahs_bohb import pipeline

QUICK_DATA = ["data.limit_train=3000", "data.limit_val=2000", "torch_threads=1"]
CONFIGURATIONS = {
    "baseline": [],  # the seed's CNN: 3 conv layers, 29,290 parameters
    "large": [  # a large point of the quick preset's space: 3 x 64 filters, 2 x 2048 neurons
        "model.n_conv_layers=3", "model.n_filters_1=64", "model.n_filters_2=64", "model.n_filters_3=64",
        "model.n_fc_layers=2", "model.n_neurons_1=2048", "model.n_neurons_2=2048", "model.kernel_size=5",
    ],
}  # fmt: skip


@contextmanager
def sweep_identity(folder: Path, trial: optuna.Trial, study: optuna.Study) -> Iterator[None]:
    """The environment the sweeper gives a trial's job (see client.current_job)."""
    env = {
        names.ENV_STUDY: study.study_name,
        names.ENV_STORAGE: f"sqlite:///{folder / 'optuna.db'}",
        names.ENV_TRIAL: str(trial.number),
        names.ENV_CONFIG: str(trial.user_attrs.get(names.CONFIG_ATTR, trial.number)),
        names.ENV_ROLE: names.TRIAL,
        names.ENV_BUDGET: "2",
        names.ENV_CHECKPOINTS: str(folder / "checkpoints"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def timed_train(cfg: DictConfig, output_dir: Path) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        pipeline.train(cfg, output_dir=output_dir)
        outcome = "complete"
    except optuna.TrialPruned as stopped:  # TrialPaused is one
        outcome = type(stopped).__name__
    return time.perf_counter() - started, outcome


def one_round(overrides: list[str], folder: Path) -> dict[str, Any]:
    """Straight, paused + resumed and one-epoch jobs of one configuration, in a fresh study."""
    two = common.compose_config(
        [*QUICK_DATA, *overrides, "trainer.max_epochs=2", "trainer.enable_progress_bar=false"]
    )
    one = common.compose_config(
        [*QUICK_DATA, *overrides, "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]
    )
    straight, _ = timed_train(two, folder / "straight")
    single, _ = timed_train(one, folder / "one-epoch")
    study = optuna.create_study(
        study_name="pause", storage=f"sqlite:///{folder / 'optuna.db'}", direction="maximize"
    )
    study.set_user_attr(names.SCHEDULER_ATTR, _scheduling.Hyperband(budget=2).record())
    first = study.ask()
    first.set_user_attr(names.CONFIG_ATTR, first.number)
    with sweep_identity(folder, first, study):  # alone at the rung: it pauses there
        paused, outcome = timed_train(two, folder / "paused")
    assert outcome == "TrialPaused", outcome
    checkpoint = study.trials[0].user_attrs[names.CHECKPOINT_ATTR]
    study.tell(first, state=optuna.trial.TrialState.PRUNED)
    resumed_trial = study.ask()  # the continuation the sweeper creates when the configuration is promoted
    resumed_trial.set_user_attr(names.CONFIG_ATTR, first.number)
    resumed_trial.set_user_attr(names.RESUME_ATTR, {"trial": first.number, **checkpoint})
    with sweep_identity(folder, resumed_trial, study):
        resumed, outcome = timed_train(two, folder / "resumed")
    assert outcome == "complete", outcome
    client._storages.clear()  # the next round's study is a new file
    return {
        "straight_s": straight,
        "one_epoch_s": single,
        "paused_s": paused,
        "resumed_s": resumed,
        "checkpoint_bytes": Path(checkpoint["path"]).stat().st_size,
    }


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def main() -> None:
    parser = common.parser(__doc__, "pause_resume")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    common.quiet()
    report = common.new_report("seconds and bytes of a pause and resume, next to a trial's fixed cost")
    report["settings"] = {"data": QUICK_DATA, "repeats": args.repeats, "configurations": CONFIGURATIONS}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:  # a first job parses the dataset and warms the caches
        one_round([], Path(tmp))
    for name, overrides in CONFIGURATIONS.items():
        rounds = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                rounds.append(one_round(overrides, Path(tmp)))
        cost = [r["paused_s"] + r["resumed_s"] - r["straight_s"] for r in rounds]
        fixed = [r["one_epoch_s"] - r["straight_s"] / 2 for r in rounds]
        epoch = [r["straight_s"] - r["one_epoch_s"] for r in rounds]
        results[name] = {
            "rounds": rounds,
            "pause_and_resume_s": spread(cost),
            "trial_fixed_cost_s": spread(fixed),
            "epoch_s": spread(epoch),
            "checkpoint_bytes": rounds[0]["checkpoint_bytes"],
            "pause_and_resume_in_epochs": round(statistics.median(cost) / statistics.median(epoch), 2),
            "pause_and_resume_over_trial_fixed_cost": round(
                statistics.median(cost) / statistics.median(fixed), 2
            ),
        }
        report["results"] = results
        common.write_result(report, args.out)
        r = results[name]
        print(
            f"{name:9s} pause+resume {r['pause_and_resume_s']['median']:.2f} s "
            f"({r['pause_and_resume_in_epochs']:.2f} epochs, "
            f"{r['pause_and_resume_over_trial_fixed_cost']:.2f}x a trial's fixed cost of "
            f"{r['trial_fixed_cost_s']['median']:.2f} s); checkpoint "
            f"{r['checkpoint_bytes'] / 2**20:.2f} MiB; an epoch {r['epoch_s']['median']:.2f} s",
            flush=True,
        )
    print(f"on {report['machine']['device_name']}; written to {args.out}")


if __name__ == "__main__":
    main()
