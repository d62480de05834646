"""The sweeper on a real SLURM cluster: one node on loopback, with accounting (tests/slurm_cluster.py).

Trials run as SLURM jobs through the submitit launcher (`hydra/launcher=slurm`, conf/hydra/launcher/
slurm.yaml) and are pruned from inside their jobs; sweepers run as a SLURM array job sharing one PostgreSQL
study (scripts/slurm_sweepers.sbatch, the README's script); and the faults a cluster adds: a trial's job
cancelled, a sweeper's job cancelled and resubmitted. The cheap app (tests/cheap_app) stands in for
training except in one run of the real `train.py` (W&B offline, its study on PostgreSQL with a password).

The sweeps are independent, so they start together when the module starts (see `runs`) and each test
waits for the one it reads: most of a SLURM trial's time is spent waiting (the queue, job start-up,
submitit's polls), not computing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import optuna
import pytest
import yaml
from slurm_cluster import SlurmCluster
from sweeps import CHEAP_APP, REPO_ROOT, Sweep, app_env, error_lines, progress_lines, scratch_dir

from hydra_plugins.hydra_bohb_sweeper._study import view as _view

States = optuna.trial.TrialState
SBATCH_SCRIPT = REPO_ROOT / "scripts" / "slurm_sweepers.sbatch"
TIMEOUT_S = 300

# The cheap app with the project's SLURM recipe, sized for a 2-core node: every trial one SLURM job.
# Hyperband on rungs at 1 and 2 epochs of 3 pauses configurations within a few trials; a paused one is
# resumed in another SLURM job from its checkpoint in the sweep directory (the shared filesystem).
CHEAP_ON_SLURM = (
    f"hydra.searchpath=[file://{REPO_ROOT / 'conf'}]",
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
    "hydra.sweeper.n_jobs=2",
    "hydra.sweeper.budget=3",
    "hydra.sweeper.pruner.reduction_factor=2",
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def slurm_env(cluster: SlurmCluster, **extra: str) -> dict[str, str]:
    """What a user on the cluster has: SLURM's config, and the project's Python first on PATH (the
    sbatch script runs `python`)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return app_env(SLURM_CONF=str(cluster.conf), PATH=path, **extra)


def run_command(
    command: list[str], sweep_dir: Path, env: dict[str, str], study: str, storage: str | None = None
) -> Sweep:
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    return read_sweep(sweep_dir, proc.returncode, proc.stdout, proc.stderr, study, storage)


def read_sweep(
    sweep_dir: Path, returncode: int, stdout: str, stderr: str, study: str, storage: str | None = None
) -> Sweep:
    sweep = Sweep(sweep_dir, returncode, stdout, stderr, study).read_back()
    if storage is not None:
        sweep.trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    return sweep


def job_id(trial: optuna.trial.FrozenTrial | Path) -> str:
    """The SLURM job that ran a trial: the submitit launcher records it as the Hydra job's id."""
    output_dir = Path(trial.user_attrs["output_dir"]) if not isinstance(trial, Path) else trial
    return str(yaml.safe_load((output_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["id"])


def counted(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials that ran: not surplus (claims that lost, or asked for beyond the quota)."""
    surplus = _view.StudyView.of(trials, ["maximize"]).surplus
    return [t for t in trials if t.number not in surplus]


def wait_for(what: str, condition: Callable[[], Any], timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)
    return value


def running_trial(
    storage: str, study: str, sweep_dir: Path, resumed: bool = False
) -> optuna.trial.FrozenTrial | None:
    """A trial in the middle of training (one epoch reported, its job started), or None. `resumed`: a
    continuation of a paused configuration whose job has started."""
    if not list(sweep_dir.glob("*/.hydra/hydra.yaml")):  # no job yet: the study may not exist
        return None
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(states=(States.RUNNING,))
    for t in trials:
        hydra_yaml = sweep_dir / str(t.number) / ".hydra" / "hydra.yaml"
        started = hydra_yaml.is_file() and bool(yaml.safe_load(hydra_yaml.read_text()))  # written in full
        if started and ("resume" in t.user_attrs if resumed else bool(t.intermediate_values)):
            return t
    return None


# --------------------------------------------------------------------------- the sweeps, started together
@dataclass
class Runs:
    cluster: SlurmCluster
    root: Path
    postgres: Callable[[], str]


def trials_as_jobs(runs: Runs) -> Sweep:
    """The cheap app, every trial a SLURM job, two in flight."""
    sweep_dir = runs.root / "trials-as-jobs"
    command = [
        sys.executable, str(CHEAP_APP), "-m", f"hydra.sweep.dir={sweep_dir}", *CHEAP_ON_SLURM,
        "hydra.sweeper.n_trials=6",
    ]  # fmt: skip
    return run_command(command, sweep_dir, slurm_env(runs.cluster), "cheap")


def trial_cancelled(runs: Runs) -> tuple[Sweep, str, int]:
    """`scancel` of a continuation's job (a paused configuration resumed in a job of its own) while
    it trains: the sweep, the cancelled job and its trial."""
    sweep_dir = runs.root / "scancel-trial"
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    command = [
        sys.executable, str(CHEAP_APP), "-m", f"hydra.sweep.dir={sweep_dir}",
        *[o for o in CHEAP_ON_SLURM if "budget" not in o and "reduction_factor" not in o],
        # Rungs at epochs 1 and 3 of 6, epochs of 4 s: the first promoted configuration's continuation
        # trains epochs 2 and 3, 8 s from its start, and its job ends KillWait (2 s) after scancel
        # (submitit's jobs ignore the SIGTERM that comes first). With epochs of 2 s, a loaded 2-core
        # machine once let the continuation finish its rung before the kill arrived.
        "hydra.sweeper.budget=6", "hydra.sweeper.pruner.reduction_factor=3",
        "hydra.sweeper.pruner.brackets=1", "hydra.sweeper.n_trials=3", "sleep_s=4",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, env=slurm_env(runs.cluster), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        victim = wait_for(
            "a continuation in its job", lambda: running_trial(storage, "cheap", sweep_dir, resumed=True)
        )
        cancelled = job_id(sweep_dir / str(victim.number))
        runs.cluster.run("scancel", cancelled)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        proc.kill()
    return read_sweep(sweep_dir, proc.returncode, out, err, "cheap"), cancelled, victim.number


def array_of_sweepers(runs: Runs) -> tuple[Sweep, str, str]:
    """scripts/slurm_sweepers.sbatch: three sweepers as one array job, one PostgreSQL study."""
    storage = runs.postgres()
    out_dir, sweep_dir = runs.root / "array", runs.root / "array" / "shared"
    out_dir.mkdir(parents=True)
    array = runs.cluster.sbatch(
        "--array=0-2", "--cpus-per-task=1", "--mem=1G", f"--output={out_dir}/slurm-%A_%a.out",
        str(SBATCH_SCRIPT), str(CHEAP_APP.relative_to(REPO_ROOT)),
        "hydra.sweeper.n_trials=10", "sleep_s=0.05",
        env=slurm_env(runs.cluster, OPTUNA_STORAGE=storage, SWEEP_DIR=str(sweep_dir)), cwd=REPO_ROOT,
    )  # fmt: skip
    runs.cluster.wait_until_done(array, timeout=TIMEOUT_S)
    logs = "\n".join(p.read_text() for p in sorted(out_dir.glob("slurm-*.out")))
    return read_sweep(sweep_dir, 0, logs, "", "cheap", storage), array, storage


def sweeper_cancelled(runs: Runs) -> tuple[Sweep, int, list[str]]:
    """A sweeper's job cancelled mid-trial and the same script resubmitted (any storage works for one
    sweeper; here the SQLite file in the sweep directory): the sweep, the trial that was running, the
    first job's final state and both jobs' logs."""
    out_dir, sweep_dir = runs.root / "resubmit", runs.root / "resubmit" / "sweep"
    out_dir.mkdir(parents=True)
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    env = slurm_env(runs.cluster, OPTUNA_STORAGE=storage, SWEEP_DIR=str(sweep_dir))
    args = (
        "--array=0", "--cpus-per-task=1", "--mem=1G",
        str(SBATCH_SCRIPT), str(CHEAP_APP.relative_to(REPO_ROOT)),
        "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=4", "hydra.sweeper.heartbeat_interval=1",
        "sleep_s=0.5",
    )  # fmt: skip
    first = runs.cluster.sbatch(f"--output={out_dir}/first.out", *args, env=env, cwd=REPO_ROOT)
    wait_for("a trial training in the sweeper", lambda: running_trial(storage, "cheap", sweep_dir))
    runs.cluster.run("scancel", first)
    runs.cluster.wait_until_done(first)
    # The trial left running: usually the one seen training, or, when scancel lands as it ends, the next,
    # killed before its first heartbeat (which must go stale all the same).
    (victim,) = optuna.load_study(study_name="cheap", storage=storage).get_trials(states=(States.RUNNING,))
    second = runs.cluster.sbatch(f"--output={out_dir}/second.out", *args, env=env, cwd=REPO_ROOT)
    runs.cluster.wait_until_done(second, timeout=TIMEOUT_S)
    logs = [(out_dir / name).read_text() for name in ("first.out", "second.out")]
    states = runs.cluster.states(first, second)
    return (
        read_sweep(sweep_dir, 0, logs[1], "", "cheap", storage),
        victim.number,
        [states[f"{first}_0"], *logs],
    )


def real_app(runs: Runs) -> tuple[Sweep, subprocess.CompletedProcess[str], str]:
    """`python train.py -m sweeper=bohb hydra/launcher=slurm ...` at a tiny size, W&B offline, its study
    on PostgreSQL with a password."""
    sweep_dir = runs.root / "train"
    storage = runs.postgres()
    command = [
        sys.executable, "train.py", "-m", "sweeper=bohb", "hydra/launcher=slurm",
        f"hydra.sweep.dir={sweep_dir}", f"hydra.sweeper.storage={storage}",
        "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
        "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2", "hydra.sweeper.budget=2",
        "data.limit_train=200", "data.limit_val=200", "model.n_conv_layers=1", "model.n_fc_layers=1",
        "model.n_filters_1=8", "model.n_neurons_1=512", "torch_threads=1",
        'hydra.sweeper.final_evaluation.overrides=["trainer.max_epochs=1","evaluate_test=true"]',
    ]  # fmt: skip
    env = slurm_env(runs.cluster, WANDB_MODE="offline", WANDB_SILENT="true")
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    sweep = read_sweep(sweep_dir, proc.returncode, proc.stdout, proc.stderr, "jahs-bohb", storage)
    return sweep, proc, storage


RUNS: dict[str, Callable[[Runs], Any]] = {
    "real app": real_app,
    "trials as jobs": trials_as_jobs,
    "trial cancelled": trial_cancelled,
    "array": array_of_sweepers,
    "sweeper cancelled": sweeper_cancelled,
}


@pytest.fixture(scope="module")
def runs(slurm: SlurmCluster, request: pytest.FixtureRequest) -> Iterator[dict[str, Future[Any]]]:
    try:
        postgres: Callable[[], str] = request.getfixturevalue("new_postgres_database")
    except pytest.skip.Exception as exc:  # only the runs that need PostgreSQL skip, with its reason
        reason = str(exc)

        def postgres() -> str:
            pytest.skip(reason)

    root = scratch_dir("bohb-slurm-")
    context = Runs(slurm, root, postgres)
    with ThreadPoolExecutor(max_workers=len(RUNS)) as pool:
        futures = {name: pool.submit(run, context) for name, run in RUNS.items()}
        yield futures
        for future in futures.values():
            future.cancel()
    shutil.rmtree(root, ignore_errors=True)


def result(runs: dict[str, Future[Any]], name: str) -> Any:
    return runs[name].result(timeout=TIMEOUT_S * 2)


def quiet_console(sweep: Sweep) -> None:
    """The sweeper's lines only: no submitit or sacct warnings (accounting answers every poll)."""
    console = sweep.stdout + sweep.stderr
    assert not error_lines(sweep.stderr)
    for noise in ("Bypassing", "sacct", "submitit", "WARNING", "Traceback"):
        assert noise not in console, console[-3000:]


# --------------------------------------------------------------------------- trials as SLURM jobs
@pytest.mark.slow
def test_every_trial_is_a_slurm_job_and_paused_configurations_resume_in_other_jobs(
    runs: dict[str, Future[Any]], slurm: SlurmCluster
) -> None:
    sweep = result(runs, "trials as jobs")
    sweep.assert_ok()
    assert len(sweep.configs) == 6
    assert {t.state for t in sweep.trials} <= {States.COMPLETE, States.PRUNED}
    # Each trial ran in a SLURM job of its own, which accounting saw complete (paused ones too: the
    # job saves its checkpoint, stops training and ends normally).
    jobs = {t.number: job_id(t) for t in sweep.trials}
    assert len(set(jobs.values())) == len(sweep.trials)
    assert set(slurm.states(*jobs.values()).values()) == {"COMPLETED"}
    assert list((sweep.sweep_dir / ".submitit").glob("*/*_log.out"))
    # Paused from inside the job at a rung, and resumed in another job from the checkpoint it left.
    resumed = [c for c in sweep.configs.values() if len(c.trials) > 1]
    assert resumed, "no configuration was resumed"
    for config in sweep.configs.values():
        epochs = [e for t in config.trials for e in sorted(t.intermediate_values)]
        assert epochs == list(range(1, config.epochs + 1))
        # Paused at a rung until the sweep finished (which discarded its checkpoint: stopped now).
        assert config.epochs == 3 or (config.discarded and config.epochs in (1, 2))
    for config in resumed:
        assert len({jobs[t.number] for t in config.trials}) == len(config.trials)
    quiet_console(sweep)
    assert len(progress_lines(sweep.stdout + sweep.stderr)) == len(sweep.trials)


@pytest.mark.slow
def test_real_train_py_on_slurm_writes_results_wandb_runs_and_the_final_evaluation(
    runs: dict[str, Future[Any]], slurm: SlurmCluster
) -> None:
    sweep, proc, storage = result(runs, "real app")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(sweep.configs) == 2
    assert all(t.intermediate_values for t in sweep.trials)  # reported per epoch from the SLURM jobs
    results = sweep.results
    assert results is not None and results["best_configuration"] in (0, 1)
    final = yaml.safe_load((sweep.sweep_dir / "final_evaluation.yaml").read_text())
    assert {"incumbent", "baseline"} <= set(final), final
    for evaluation in (final["incumbent"], final["baseline"]):
        assert evaluation["state"] == "complete" and 0 < evaluation["metrics"]["test_acc"] <= 1, evaluation
    # The trials, the incumbent's and the baseline's evaluations: all SLURM jobs, all completed (the
    # two evaluations as one array job).
    jobs = [job_id(t) for t in sweep.trials] + [
        job_id(Path(final[name]["output_dir"])) for name in ("incumbent", "baseline")
    ]
    assert len(set(jobs)) == len(sweep.trials) + 2
    assert set(slurm.states(*{j.split("_")[0] for j in jobs}).values()) == {"COMPLETED"}
    # W&B (offline): a run per trial, the final evaluation's candidates, its test of the pick, the
    # baseline, and the sweep's own run.
    runs = list((sweep.sweep_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == len(sweep.trials) + len(final["candidates"]) + 3
    quiet_console(sweep)
    # The storage's password is in no output, saved config, log, pickled submitit job or W&B run file.
    password = str(urlsplit(storage).password)
    assert password not in proc.stdout + proc.stderr
    assert not [p for p in sweep.sweep_dir.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]


# --------------------------------------------------------------------------- sweepers as an array job
@pytest.mark.slow
def test_an_array_of_sweepers_shares_one_postgres_study_and_its_budget(
    runs: dict[str, Future[Any]], slurm: SlurmCluster
) -> None:
    sweep, array, storage = result(runs, "array")
    tasks = slurm.states(array)
    assert sorted(tasks) == [f"{array}_{i}" for i in range(3)] and set(tasks.values()) == {"COMPLETED"}
    trials = counted(sweep.trials)
    assert len(sweep.configs) == 10  # a global budget: not 3 x 10, not one more
    assert all(t.state in (States.COMPLETE, States.PRUNED) for t in trials)
    resumed_from = [t.user_attrs["resume"]["trial"] for t in trials if "resume" in t.user_attrs]
    assert len(resumed_from) == len(set(resumed_from))  # no paused configuration resumed twice
    # Job directories are named by trial number: three sweepers never write into one.
    job_dirs = [p for p in sweep.sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    assert sorted(int(p.name) for p in job_dirs) == sorted(t.number for t in trials)
    # Each sweeper said what it did; the password is in no log and no file.
    assert sweep.stdout.count("BOHB: study 'cheap'") == 3, sweep.stdout
    assert "Traceback" not in sweep.stdout and not error_lines(sweep.stdout)
    password = str(urlsplit(storage).password)
    assert password not in sweep.stdout
    assert not [p for p in sweep.sweep_dir.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]


# --------------------------------------------------------------------------- faults under SLURM
@pytest.mark.slow
def test_scancel_of_a_continuations_job_retries_it_in_another_job_and_the_sweep_goes_on(
    runs: dict[str, Future[Any]], slurm: SlurmCluster
) -> None:
    sweep, cancelled, number = result(runs, "trial cancelled")
    sweep.assert_ok()
    assert slurm.states(cancelled)[cancelled].startswith("CANCELLED")
    victim = sweep.trials[number]
    assert victim.state == States.FAIL and victim.user_attrs["fault"] == "worker"
    reason = victim.user_attrs["fail_reason"]
    assert f"Job {cancelled} " in reason and "CANCELLED" in reason, reason
    # Not the configuration's doing: a retry in another job continued it from where the victim started,
    # the other trials ran to the end or were pruned, and the sweep reached n_trials.
    (retry,) = [t for t in sweep.trials if t.user_attrs.get("follows") == number]
    assert retry.state in (States.COMPLETE, States.PRUNED) and job_id(retry) != cancelled
    assert retry.user_attrs.get("resume") == victim.user_attrs.get("resume")
    assert len(sweep.configs) == 3
    others = [t for t in sweep.trials if t.number != number]
    assert all(t.state in (States.COMPLETE, States.PRUNED) for t in others)
    assert not error_lines(sweep.stderr)


@pytest.mark.slow
def test_a_cancelled_sweeper_job_resubmitted_resumes_to_n_trials_retrying_its_trial_once(
    runs: dict[str, Future[Any]],
) -> None:
    sweep, number, (first_state, _first_log, second_log) = result(runs, "sweeper cancelled")
    assert first_state.startswith("CANCELLED")
    trials = sweep.trials
    assert not [t.number for t in trials if t.state in (States.RUNNING, States.WAITING)]
    # The trial that was training when its sweeper died: failed as stale, its configuration run once more.
    stale = trials[number]
    assert stale.state == States.FAIL
    retries = [t for t in trials if t.user_attrs.get("follows") == number]
    assert len(retries) == 1 and retries[0].state in (States.COMPLETE, States.PRUNED)
    if stale.params:  # killed after its configuration was sampled: the same one runs again
        assert retries[0].params == stale.params
    assert len(sweep.configs) == 4  # exactly n_trials: the retry stands in for the stale trial
    assert "BOHB: study 'cheap'" in second_log and "Traceback" not in second_log
