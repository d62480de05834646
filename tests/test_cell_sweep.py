"""The cell space searched by the sweeper, on real Fashion-MNIST subsets: a cell network paused at a rung
and resumed trains exactly the epochs of an uninterrupted run (cosine schedule and TrivialAugment
included); a cell without a path from input to output is stopped before its first epoch, so the
sampler ranks it below every result, and the sweep goes on; `python train.py -m experiment=cell_quick`
runs end to end, its final evaluation against the seed's CNN, and so does the two-objective variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from sweeps import REPO_ROOT, progress_lines, run_in_process, scratch_dir, sweep_cli, sweep_in_process

from jahs_bohb.cell_space import EDGES, dead_cell_reason
from jahs_bohb.model import FashionCNN, count_parameters
from jahs_bohb.pipeline import RESULT_FILE, train
from jahs_bohb.report.figures import parallel_coordinates
from jahs_bohb.report.sweeps import Sweep

TRAIN_PY = REPO_ROOT / "train.py"
# A small cell network on 400 images: three cells of width 4 at 14x14, TrivialAugment and crops on.
SMALL_CELL = (
    "data.limit_train=400", "data.limit_val=300", "model.depth=1", "model.width=4", "model.resolution=0.5",
    "data.trivial_augment=true", "logger=none", "torch_threads=1",
)  # fmt: skip
QUIET = (
    "hydra.sweeper.report=null", "hydra.sweeper.figures=false", "hydra.sweeper.tracking_key=null",
    "hydra.sweeper.final_evaluation.enabled=false",
)  # fmt: skip


def task(cfg: DictConfig) -> dict[str, Any]:
    return train(cfg, output_dir=Path(HydraConfig.get().runtime.output_dir))


def history(output_dir: Path) -> list[tuple[int, float, float]]:
    result = yaml.safe_load((output_dir / RESULT_FILE).read_text())
    return [(int(row["epoch"]), float(row["val/acc"]), float(row["lr"])) for row in result["history"]]


@pytest.mark.slow
def test_a_resumed_cell_network_trains_as_if_it_had_never_paused() -> None:
    """Invariant: a configuration paused at a rung and continued later has, epoch by epoch, the
    validation accuracy and learning rate of a straight run of its overrides (weights, Nesterov
    momentum, the cosine schedule's step, batch order and TrivialAugment draws all resume)."""
    root = scratch_dir("cell-pause-")
    run = sweep_in_process(
        root / "sweep", "sweeper=bohb_cell", *SMALL_CELL, *QUIET,
        "hydra.sweeper.params={optimizer.lr: 'tag(log, interval(0.01, 0.5))', "
        "model.cell.edge_2_4: 'choice(conv3x3, conv1x1, avgpool3x3)'}",
        "hydra.sweeper.n_trials=6", "hydra.sweeper.budget=4",
        "hydra.sweeper.pruner.min_resource=2", "hydra.sweeper.pruner.reduction_factor=2",
        task=task, app=TRAIN_PY, config_name="train", study_name="jahs-bohb-cell",
    )  # fmt: skip
    run.assert_ok()
    resumed = [c for c in run.configs.values() if len(c.trials) > 1]
    assert resumed, "no configuration was paused and resumed"
    config = resumed[0]
    overrides = config.trials[0].user_attrs["overrides"]
    code, _, err = run_in_process(
        TRAIN_PY, "sweeper=bohb_cell", *overrides, *SMALL_CELL, f"hydra.run.dir={root / 'straight'}"
    )
    assert code == 0, err[-2000:]
    straight, resumed_run = history(root / "straight"), history(Path(config.last.user_attrs["output_dir"]))
    assert [e for e, _, _ in resumed_run] == [1, 2, 3, 4] == [e for e, _, _ in straight]
    assert [a for _, a, _ in resumed_run] == pytest.approx([a for _, a, _ in straight], abs=1e-6)
    assert [lr for _, _, lr in resumed_run] == pytest.approx([lr for _, _, lr in straight], rel=1e-6)
    assert straight[-1][2] < 1e-6 * straight[0][2] + 1e-12  # annealed to 0 at the budget's last step


def test_a_cell_without_a_path_is_stopped_before_training_and_the_sweep_goes_on() -> None:
    """Invariant: a dead cell never trains (no epoch, no result file) and ends PRUNED with no
    intermediate value, which Optuna's TPE ranks below every trial that reported one; live cells of
    the same sweep train as usual."""
    root = scratch_dir("cell-dead-")
    run = sweep_in_process(
        root / "sweep", "sweeper=bohb_cell", *SMALL_CELL, *QUIET, "model.resolution=0.25",
        "model.cell.edge_1_4=zero", "model.cell.edge_2_3=zero",  # paths left: 1-2-4 and 1-3-4
        "hydra.sweeper.params={model.cell.edge_1_2: 'choice(zero, skip)', "
        "model.cell.edge_1_3: 'choice(zero, skip)'}",
        "hydra.sweeper.n_trials=8", "hydra.sweeper.budget=2", "hydra.sweeper.sampler.n_startup_trials=8",
        task=task, app=TRAIN_PY, config_name="train", study_name="jahs-bohb-cell",
    )  # fmt: skip
    run.assert_ok()
    fixed = {"edge_1_4": "zero", "edge_2_3": "zero"}

    def cell_of(trial: optuna.trial.FrozenTrial) -> dict[str, str]:
        return {**fixed, **{e: trial.params[f"model.cell.{e}"] for e in EDGES if e not in fixed}}

    dead = [t for t in run.trials if dead_cell_reason(cell_of(t)) is not None]
    live = [t for t in run.trials if dead_cell_reason(cell_of(t)) is None]
    assert dead and live
    for trial in dead:
        assert trial.state == optuna.trial.TrialState.PRUNED and not trial.intermediate_values
        assert not (Path(trial.user_attrs["output_dir"]) / RESULT_FILE).exists()
    assert all(t.intermediate_values for t in live)  # trained, then completed or stopped by Hyperband
    lines = [line for line in progress_lines(run.stderr + run.stdout) if "refused before training" in line]
    assert len(lines) == len(dead), "the console does not say why a dead cell stopped"
    # What TPE makes of it: its split puts a pruned trial without any value after every other.
    from optuna.samplers._tpe.sampler import _split_trials

    study = optuna.load_study(
        study_name="jahs-bohb-cell", storage=f"sqlite:///{root / 'sweep' / 'optuna.db'}"
    )
    below, above = _split_trials(study, study.get_trials(deepcopy=False), n_below=len(live))
    assert {t.number for t in below} == {t.number for t in live}
    assert {t.number for t in dead} <= {t.number for t in above}


def test_a_sweep_whose_fixed_edges_leave_no_path_is_refused_before_any_trial() -> None:
    root = scratch_dir("cell-all-dead-")
    run = sweep_in_process(
        root / "sweep", "sweeper=bohb_cell", *SMALL_CELL,
        "model.cell.edge_1_2=zero", "model.cell.edge_1_3=zero", "model.cell.edge_1_4=zero",
        task=task, app=TRAIN_PY, config_name="train", study_name="jahs-bohb-cell",
    )  # fmt: skip
    assert run.returncode == 2
    [line] = [x for x in run.stderr.splitlines() if x.startswith("error:")]
    assert "model.cell has no path of non-zero edges" in line
    assert not run.has_db and not run.trials  # no study, no trial


@pytest.mark.slow
def test_the_cell_quick_command_runs_end_to_end_against_the_seeds_cnn() -> None:
    """`python train.py -m experiment=cell_quick` as a user types it, shrunk: the search, the final
    evaluation (retrained candidates, the pick tested once) and the baseline, which is the seed's CNN
    and not a cell network, and the report with its figures."""
    root = scratch_dir("cell-e2e-")
    run = sweep_cli(
        root / "sweep", "experiment=cell_quick", "hydra.sweeper.n_trials=6", "hydra.sweeper.budget=3",
        "data.limit_train=500", "data.limit_val=300", "model.depth=1", "model.width=4", "logger=none",
        'hydra.sweeper.final_evaluation.overrides=["trainer.max_epochs=3"]',
        script=TRAIN_PY, study_name="cell-quick",
    )  # fmt: skip
    run.assert_ok()
    final = yaml.safe_load((root / "sweep" / "final_evaluation.yaml").read_text())
    assert final["incumbent"]["metrics"]["test_acc"] > 0.1
    assert "model.cell.edge_1_2" in " ".join(final["incumbent"]["overrides"])
    baseline = final["baseline"]
    assert baseline["metrics"]["n_parameters"] == count_parameters(FashionCNN())  # the seed's CNN
    assert "model=cnn" in baseline["overrides"]
    # The baseline's own overrides win over the final evaluation's: early stopping as experiment=quick.
    assert "early_stopping_patience=5" in baseline["overrides"]
    assert "early_stopping_patience=null" not in baseline["overrides"]
    assert "model.depth=1" not in baseline["overrides"]  # a fixed override of the cell model
    report = (root / "sweep" / "report.md").read_text()
    assert "edge_1_2" in report
    assert (root / "sweep" / "figure3_parallel_coordinates.png").is_file()
    # The seed's CNN is no point of the cell space: Figure 3 does not draw its configuration.
    plan = parallel_coordinates([Sweep.load(root / "sweep")])
    assert plan is not None and plan.baseline is not None and not plan.baseline_configuration_shown


@pytest.mark.slow
def test_the_cell_space_has_an_accuracy_and_size_front() -> None:
    root = scratch_dir("cell-mo-")
    run = sweep_cli(
        root / "sweep", "experiment=cell_quick_mo", "hydra.sweeper.n_trials=4", "hydra.sweeper.budget=3",
        "data.limit_train=500", "data.limit_val=300", "model.depth=1", "logger=none",
        "hydra.sweeper.final_evaluation.enabled=false",
        script=TRAIN_PY, study_name="cell-quick-mo",
    )  # fmt: skip
    run.assert_ok()
    assert run.results is not None and run.results["solutions"]
    # The front: no solution dominates another (as accurate or more, and as small or smaller).
    points = [tuple(s["values"]) for s in run.results["solutions"]]
    for a in points:
        assert not any(b != a and b[0] >= a[0] and b[1] <= a[1] for b in points), (a, points)
    assert all(size >= 4822 for _, size in points)  # at least the smallest cell network's parameters
    assert (root / "sweep" / "pareto_front.png").is_file()
