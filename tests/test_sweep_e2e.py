"""The real command a user types, `python train.py -m sweeper=bohb ...`, on real Fashion-MNIST subsets.

One small sweep is shared by the tests below: its Optuna study, results file and W&B run files are
read back with Optuna's and W&B's own readers. W&B is wanted online with its server out of reach, as on
this machine (and on a cluster node with no route out): every run is kept offline, and one line says so.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from sweeps import REPO_ROOT, progress_lines, run_in_process, train_sweep_cli
from wandb_runs import inspect, wandb_lines

from hydra_plugins.hydra_bohb_sweeper._study import view as _view

N_TRIALS = 8
TABLE_1 = {
    "model.n_conv_layers": lambda v: v in (1, 2, 3),
    "model.n_filters_1": lambda v: isinstance(v, int) and 8 <= v <= 256,
    "model.n_filters_2": lambda v: isinstance(v, int) and 8 <= v <= 256,
    "model.n_filters_3": lambda v: isinstance(v, int) and 8 <= v <= 256,
    "model.kernel_size": lambda v: v in (3, 5),
    "model.batch_norm": lambda v: v in (True, False),
    "model.global_avg_pooling": lambda v: v in (True, False),
    "model.n_fc_layers": lambda v: v in (1, 2),
    "model.n_neurons_1": lambda v: isinstance(v, int) and 512 <= v <= 2048,
    "model.n_neurons_2": lambda v: isinstance(v, int) and 512 <= v <= 2048,
    "model.dropout": lambda v: v in (0.1, 0.2, 0.3, 0.4, 0.5),
    "data.batch_size": lambda v: v in (64, 128, 256, 512, 1024, 2048),
    "optimizer": lambda v: v in ("adam", "sgd"),
    "optimizer.lr": lambda v: 1e-3 <= v <= 1.0,
    "optimizer.weight_decay": lambda v: 1e-5 <= v <= 1e-2,
    "data.hflip": lambda v: v in (True, False),
    "data.rotation": lambda v: v in (True, False),
}


def load_study(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="jahs-bohb", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sweep_dir = tmp_path_factory.mktemp("sweep")
    proc = train_sweep_cli(
        sweep_dir, f"hydra.sweeper.n_trials={N_TRIALS}", "hydra.sweeper.budget=3",
        "hydra.sweeper.final_evaluation.top_k=3",  # of 8 configurations; sweeper=bohb retrains 5
    )  # fmt: skip
    (sweep_dir / "console.txt").write_text(proc.stdout + proc.stderr)
    return sweep_dir


@pytest.mark.slow
def test_the_console_shows_one_line_per_trial_and_little_else(sweep: Path) -> None:
    """Start, one line per trial, the final evaluation, the W&B hint and the summary: no launcher
    banners, Lightning or W&B messages (they are in sweep.log and each job's log)."""
    console = (sweep / "console.txt").read_text().splitlines()
    n_run = len(load_study(sweep).get_trials())  # the configurations' segments
    assert len(console) <= n_run + 15, "\n".join(console)
    assert len(progress_lines("\n".join(console))) == n_run
    assert not [line for line in console if "warning" in line.lower() or "GPU available" in line]
    job_log = (sweep / "0" / "train.log").read_text()
    assert "val_acc_best=" in job_log or "GPU available" in job_log


@pytest.mark.slow
def test_sweep_pauses_and_resumes_inside_table_1(sweep: Path) -> None:
    trials = load_study(sweep).get_trials()
    configs = _view.configurations(trials)
    assert len(configs) == N_TRIALS
    states = {t.state for t in trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    complete = [c for c in configs.values() if c.state == "complete"]
    paused = [c for c in configs.values() if c.state == "paused"]
    assert complete and paused
    assert max(c.epochs for c in paused) < 3 and all(c.epochs == 3 for c in complete)
    for t in trials:
        for name, value in t.params.items():
            assert TABLE_1[name](value), f"trial {t.number}: {name}={value} outside Table 1"
        n_conv, n_fc = t.params["model.n_conv_layers"], t.params["model.n_fc_layers"]
        assert ("model.n_filters_2" in t.params) == (n_conv >= 2)
        assert ("model.n_filters_3" in t.params) == (n_conv >= 3)
        assert ("model.n_neurons_2" in t.params) == (n_fc == 2)


@pytest.mark.slow
def test_results_file_and_best_config_retrain(sweep: Path) -> None:
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    study = load_study(sweep)
    assert results["best_value"] == pytest.approx(study.best_value)
    assert results["best_params"] == study.best_params
    assert results["n_complete"] + results["n_pruned"] + results["n_failed"] == N_TRIALS
    assert results["epochs_trained"] < results["epochs_unpruned"]
    # What train() returned beside its objective: the best trial's parameter count and device.
    best = study.best_trial
    assert results["best_metrics"] == best.user_attrs["metrics"]
    assert results["best_metrics"]["n_parameters"] > 0 and results["best_metrics"]["epochs"] == 3
    for figure in (
        "best_so_far.png", "param_importances.png", "parallel_coordinates.html",
        "figure2_best_over_time.png", "figure3_parallel_coordinates.png",
    ):  # fmt: skip
        assert (sweep / figure).stat().st_size > 0


@pytest.mark.slow
def test_final_evaluation_tests_only_the_pick_of_the_top_three_and_the_baseline(sweep: Path) -> None:
    final = yaml.safe_load((sweep / "final_evaluation.yaml").read_text())
    incumbent, baseline, candidates = final["incumbent"], final["baseline"], final["candidates"]
    # The fixture's top_k 3, less those far behind the best (each named with why: the rule's own tests
    # are in tests/test_final_evaluation.py).
    left_out = final.get("left_out") or []
    assert len(candidates) + len(left_out) == 3 and candidates
    assert all(left["why"] for left in left_out)
    for record in candidates:  # retrained, validated, never tested
        assert record["state"] == "complete" and record["metrics"].get("test_acc") is None
        assert record["metrics"]["epochs"] == 3
    best = max(candidates, key=lambda r: r["value"])
    assert incumbent["configuration"] == best["configuration"]
    # The pick's kept weights are tested, not trained again: the same validation accuracy, its epochs.
    assert incumbent["value"] == pytest.approx(best["value"], abs=1e-6)
    assert incumbent["metrics"]["epochs"] == 3 and 0.1 < incumbent["metrics"]["test_acc"] <= 1.0
    assert baseline["state"] == "complete" and 0.1 < baseline["metrics"]["test_acc"] <= 1.0
    # The baseline is the job's default model (the seed's 3 conv layers, 29,290 parameters).
    assert baseline["metrics"]["n_parameters"] == 29290
    assert "model.n_conv_layers" not in " ".join(baseline["overrides"])
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["final_evaluation"]["incumbent"]["metrics"]["test_acc"] == incumbent["metrics"]["test_acc"]
    report = (sweep / "report.md").read_text()
    assert "Table 2" in report and "Baseline" in report and "BOHB incumbent" in report
    # The best trial's config retrains with one command and reproduces its validation accuracy (the
    # command's arguments parsed by Hydra as on the command line, in this process).
    run_dir = sweep / "retrain"
    returncode, _, stderr = run_in_process(
        REPO_ROOT / "train.py", "--config-dir", str(sweep), "--config-name", "best_config",
        f"hydra.run.dir={run_dir}", "logger.wandb=null", "trainer.enable_progress_bar=false",
    )  # fmt: skip
    assert returncode == 0, stderr[-3000:]
    retrained = yaml.safe_load((run_dir / "result.yaml").read_text())
    assert retrained["val_acc_best"] == pytest.approx(results["best_value"], abs=0.02)


@pytest.mark.slow
def test_wandb_run_per_trial_and_sweep_offline_when_the_server_is_out_of_reach(sweep: Path) -> None:
    # One line says why, for the sweep and its trials (the basic launcher runs them in its process).
    (line,) = wandb_lines((sweep / "console.txt").read_text())
    assert "is out of reach" in line and "wandb sync" in line
    assert not list((sweep / "wandb").glob("run-*")), "an online run was attempted"
    runs = [inspect(run_dir) for run_dir in sorted((sweep / "wandb").glob("offline-run-*"))]
    study = load_study(sweep)
    trials = study.get_trials()
    configs = _view.configurations(trials)
    # A run per trial (the segments of one configuration share its run id: after `wandb sync` they are
    # one run), the final evaluation's candidates, the pick's test, the baseline and the sweep's own run.
    n_candidates = len(yaml.safe_load((sweep / "final_evaluation.yaml").read_text())["candidates"])
    assert len(runs) == len(trials) + n_candidates + 3
    by_name: dict[str, list[dict]] = {}
    for run in runs:
        by_name.setdefault(run["name"], []).append(run)
    evaluations = {"final-jahs-bohb", "baseline-jahs-bohb", "sweep-jahs-bohb"}
    candidates = {f"candidate-{c['configuration']}" for c in yaml.safe_load(
        (sweep / "final_evaluation.yaml").read_text())["candidates"]}  # fmt: skip
    assert set(by_name) == {f"trial-{n}" for n in configs} | evaluations | candidates
    for number, config in configs.items():
        segments = sorted(by_name[f"trial-{number}"], key=lambda r: r["start_time"])
        assert len(segments) == len(config.trials) and len({r["run_id"] for r in segments}) == 1
        assert all(run["state"] == "finished" for run in segments)
        for name, value in config.trials[0].params.items():
            assert segments[0]["config"][name] == value
        summary = segments[-1]["summary"]  # what the configuration came to
        assert summary["state"] == config.state
        assert summary["epochs"] == config.epochs
        if config.state == "paused":
            assert summary["reason"].startswith("paused after epoch")
    sweep_summary = by_name["sweep-jahs-bohb"][0]["summary"]
    assert sweep_summary["best_value"] == pytest.approx(study.best_value)
    assert sweep_summary["n_trials"] == N_TRIALS
    assert 0 < sweep_summary["incumbent/test_acc"] <= 1
