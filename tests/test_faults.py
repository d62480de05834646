"""Faults a long sweep meets, on real engines: a worker process killed with SIGKILL, PostgreSQL storage
shared by joblib worker processes and by several sweeper processes, the submitit launcher, and a storage
password that must stay out of every file and log (for the real train.py, W&B runs included, on SLURM in
test_slurm.py; a trial raising, e.g. CUDA out of memory, is in test_sweeper.py).

The sweeps run the cheap app (tests/cheap_app) through its real command line; `chaos` injects the fault
into one trial. PostgreSQL is Debian's server, started on loopback by the `postgres_url` fixture.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import pytest
import yaml
from sweeps import CHEAP_APP, REPO_ROOT, Sweep, app_env, cheap_task, sweep_cli

from hydra_plugins.hydra_bohb_sweeper._study import view as _view

ROOT = REPO_ROOT
APP = CHEAP_APP
States = optuna.trial.TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_cheap(sweep_dir: Path, *overrides: str, timeout: int = 300) -> Sweep:
    return sweep_cli(sweep_dir, *overrides, timeout=timeout)


def load(storage: str, name: str = "cheap") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def load_view(storage: str, name: str = "cheap") -> _view.StudyView:
    return _view.view_of(optuna.load_study(study_name=name, storage=storage))


def sqlite(sweep_dir: Path) -> str:
    return f"sqlite:///{sweep_dir / 'optuna.db'}"


@pytest.mark.slow
def test_worker_killed_mid_trial_fails_and_the_sweep_finishes(tmp_path: Path) -> None:
    """A joblib worker SIGKILLed mid-trial breaks loky's whole pool, so the other trial in flight ends with
    TerminatedWorkerError too: each such trial is run once more, and the study still ends with n_trials
    configurations that trained to the end or stopped at a rung; none is left RUNNING or lost."""
    proc = run_cheap(
        tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=8", "sleep_s=0.2", "chaos=sigkill", "chaos_trial=2", "chaos_epoch=1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = load(sqlite(tmp_path))
    assert not [t.number for t in trials if t.state in (States.RUNNING, States.WAITING)]
    killed = trials[2]
    assert killed.state == States.FAIL
    assert killed.user_attrs["fail_reason"].startswith("TerminatedWorkerError")
    died = [t for t in trials if t.state == States.FAIL]
    assert all(t.user_attrs["fault"] == "worker" for t in died)
    # Each trial the dead worker took down was run once more, with the same configuration (the culprit's
    # retry has another trial number, so the fault, tied to trial 2, does not strike again).
    for t in died:
        retries = [r for r in trials if r.user_attrs.get("follows") == t.number]
        assert len(retries) == 1 and retries[0].params == t.params
        assert retries[0].user_attrs["config"] == t.user_attrs["config"]
        assert retries[0].state in (States.COMPLETE, States.PRUNED)
    # Nothing lost, nothing counted twice: n_trials configurations, each trained to the end or stopped
    # at a rung (paused there until the sweep finished and discarded its checkpoint).
    configs = load_view(sqlite(tmp_path)).configurations
    assert len(configs) == 8 and {c.state for c in configs.values()} <= {"complete", "stopped"}


# --------------------------------------------------------------------------- PostgreSQL
# The `postgres_url` fixture (tests/conftest.py): a fresh database on Debian's server, per test.
def password(url: str) -> str:
    return str(urlsplit(url).password)


def files_containing(root: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.slow
def test_postgres_storage_shared_by_process_workers_keeps_the_password_secret(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two joblib processes run trials at once and report to the sweeper's study through PostgreSQL,
    where Hyperband prunes them; the password is in no output and no file."""
    proc = run_cheap(
        tmp_path, f"hydra.sweeper.storage={postgres_url}", "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=8",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = load(postgres_url)
    configs = _view.configurations(trials)
    assert len(configs) == 8
    assert {t.state for t in trials} <= {States.COMPLETE, States.PRUNED}
    assert any(c.state == "paused" for c in configs.values())  # the jobs reported through PostgreSQL
    spans = [(t.datetime_start, t.datetime_complete) for t in trials]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :]), (
        "no two trials were in flight at once"
    )
    assert not (tmp_path / "optuna.db").exists()
    secret = password(postgres_url)
    assert secret not in proc.stdout + proc.stderr
    assert files_containing(tmp_path, secret) == []
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert results["storage"] == postgres_url.replace(secret, "***")


@pytest.mark.slow
def test_three_sweepers_share_one_study_its_budget_and_its_promotions(
    tmp_path: Path, postgres_url: str
) -> None:
    """Three sweeper processes on one PostgreSQL study: exactly n_trials configurations between them,
    paused configurations resumed by whichever sweeper is free, and none resumed twice."""
    n_trials = 12
    common = [f"hydra.sweeper.storage={postgres_url}", f"hydra.sweeper.n_trials={n_trials}", "sleep_s=0.05"]
    env = app_env()
    command = [sys.executable, str(APP), "-m", f"hydra.sweep.dir={tmp_path / 'shared'}", *common]
    sweepers = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    for sweeper in sweepers:
        _, err = sweeper.communicate(timeout=300)
        assert sweeper.returncode == 0, err[-2000:]
    trials = load(postgres_url)
    ran = [t for t in trials if not t.user_attrs.get("surplus")]
    configs = _view.configurations(trials)
    assert len(configs) == n_trials  # a global budget: not 3 x n_trials, not one more
    assert all(t.state in (States.COMPLETE, States.PRUNED) for t in ran)
    resumed_from = [t.user_attrs["resume"]["trial"] for t in ran if "resume" in t.user_attrs]
    assert resumed_from and len(resumed_from) == len(set(resumed_from))  # no paused trial resumed twice
    for config in configs.values():  # each configuration's epochs in order, once, across its segments
        epochs = [e for t in config.trials for e in sorted(t.intermediate_values)]
        assert epochs == list(range(1, config.epochs + 1))
    # Output directories are named by trial number, so three sweepers never write into one.
    job_dirs = [p for p in (tmp_path / "shared").iterdir() if p.is_dir() and p.name.isdigit()]
    assert sorted(int(p.name) for p in job_dirs) == sorted(t.number for t in ran)


# --------------------------------------------------------------------------- submitit
@pytest.mark.slow
def test_submitit_local_launcher_runs_and_prunes(tmp_path: Path) -> None:
    proc = run_cheap(
        tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
        "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=8",
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = load(sqlite(tmp_path))
    assert len(_view.configurations(trials)) == 8
    assert all(t.state in (States.COMPLETE, States.PRUNED) for t in trials)
    assert any("resume" in t.user_attrs for t in trials)  # paused, then resumed in another submitit job
    # Each job ran as a submitit job: its logs are in submitit's folder of the sweep.
    assert list((tmp_path / ".submitit").rglob("*_log.out"))


# --------------------------------------------------------------------------- killed at random
def worker_processes(pid: int) -> list[int]:
    """The joblib (loky) worker processes of the sweeper `pid`, not its resource trackers."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        if parent == pid and b"LokyProcess" in command:
            found.append(int(stat.parent.name))
    return found


def ctrl_c_reaches_it() -> None:
    """In the child before it starts: SIGINT as a terminal delivers it (a test run in the background,
    as CI may start it, ignores SIGINT, and its children would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


LAST_EPOCHS = {1, 3, 9}  # the cheap app's rungs and budget: a trial may end right after these


def training(pids: set[int], log: Path, study: optuna.Study, midway: bool = False) -> set[int]:
    """Those of `pids` in the middle of a trial: they logged an epoch of it (the cheap app's
    epochs_log) within the last two seconds, and the trial is still running. `midway`: and that epoch
    is none after which the trial may end, so it has an epoch left to train (a worker killed as its
    trial ends would be an idle one, which joblib replaces without a word)."""
    lines = [line.split() for line in (log.read_text().splitlines()[-40:] if log.exists() else [])]
    last = {
        int(f[3]): (int(f[2]), int(f[1]))
        for f in lines
        if int(f[3]) in pids and time.time() - float(f[5]) < 2
    }
    if not last:
        return set()
    running = {t.number for t in study.get_trials(deepcopy=False, states=(States.RUNNING,))}
    return {
        pid for pid, (number, epoch) in last.items()
        if number in running and not (midway and epoch in LAST_EPOCHS)
    }  # fmt: skip


@pytest.mark.slow
def test_sweepers_killed_and_interrupted_at_random_on_one_postgres_study_lose_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    """Three sweepers on one PostgreSQL study (one runs its trials in two joblib worker processes);
    seeded rounds of SIGKILL and SIGINT (Ctrl-C) of whole sweepers and SIGKILL of single worker
    processes at random moments, each sweeper restarted, as a user would. Invariants, from the study
    and from the app's own log of every epoch it trained:
      I1 exactly n_trials configurations; I3 none lost (each complete or stopped at a rung);
      I5 nothing RUNNING or WAITING at the end;
      I2 no two processes train one configuration at once;
      I4 an epoch trained twice only by a trial that a fault ended;
      and every configuration's state after each epoch (`acc`, carried by its checkpoints) equals an
      uninterrupted run's."""
    n_trials, rng = 20, random.Random(26)
    log = tmp_path / "epochs.log"
    common = [
        f"hydra.sweep.dir={tmp_path / 'shared'}", f"hydra.sweeper.storage={postgres_url}",
        f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.heartbeat_interval=1", "sleep_s=0.25",
        f"epochs_log={log}",
    ]  # fmt: skip
    kinds = [[], [], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]]

    def start(kind: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(APP), "-m", *common, *kind], cwd=ROOT, env=app_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=ctrl_c_reaches_it,
        )  # fmt: skip

    sweepers = [start(kind) for kind in kinds]
    planned = ["sigkill", "sigint", "worker", "sigkill"]
    rng.shuffle(planned)
    struck: list[str] = []
    study: optuna.Study | None = None
    deadline = time.monotonic() + 240
    while planned and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.05, 0.4))  # a seeded moment within a trial
        if all(proc.poll() == 0 for proc in sweepers):
            break  # the study is finished
        try:
            study = study or optuna.load_study(study_name="cheap", storage=postgres_url)
        except KeyError:  # not created yet
            continue
        fault = planned[0]
        for slot in [2] if fault == "worker" else rng.sample(range(3), 3):
            proc = sweepers[slot]
            if proc.poll() is not None:  # it had ended: a user starts it again
                sweepers[slot] = start(kinds[slot])
                continue
            workers = worker_processes(proc.pid)
            busy = training({proc.pid, *workers}, log, study, midway=fault == "worker")
            if fault == "worker":
                busy &= set(workers)
            if not busy:
                continue
            struck.append(planned.pop(0))
            if fault == "worker":  # a joblib worker process in the middle of a trial
                os.kill(min(busy), signal.SIGKILL)
            else:
                os.killpg(proc.pid, signal.SIGKILL if fault == "sigkill" else signal.SIGINT)
                proc.wait(timeout=120)
                sweepers[slot] = start(kinds[slot])
            break
    for proc in sweepers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, 2), err[-2000:]  # 2: Ctrl-C'd, or refused as finished meanwhile
    last = start([])  # once every sweeper has ended: this one finds the study finished
    _, err = last.communicate(timeout=300)
    assert last.returncode == 0, err[-2000:]

    study = optuna.load_study(study_name="cheap", storage=postgres_url)
    trials = study.get_trials()
    view = _view.StudyView.read(study._storage, study._study_id, n_trials)
    ended_by = Counter(t.user_attrs.get("fault") for t in trials)
    print("faults struck:", struck, "trials they ended:", ended_by)
    # The faults hit trials in flight: killed sweepers' went stale, killed workers' failed as such (Ctrl-C
    # reaches a job as it ends its trial too: then the trial was told, and none is interrupted).
    assert {"sigkill", "sigint", "worker"} <= set(struck), struck  # each while a trial trained
    assert {"stale", "worker"} <= set(ended_by)
    assert len(view.configurations) == n_trials  # I1
    assert {c.state for c in view.configurations.values()} <= {"complete", "stopped"}  # I3
    assert not [t.number for t in trials if t.state in (States.RUNNING, States.WAITING)]  # I5
    by_trial = {t.number: t for t in trials}
    entries = [line.split() for line in log.read_text().splitlines()]
    spans: dict[int, list[tuple[float, float, int]]] = {}
    trained: dict[tuple[int, int], list[int]] = {}
    for config, epoch, number, pid, started, ended, acc in entries:
        spans.setdefault(int(config), []).append((float(started), float(ended), int(pid)))
        trained.setdefault((int(config), int(epoch)), []).append(int(number))
        params = by_trial[int(number)].params
        uninterrupted = sum(
            cheap_task.learning_curve(params["x"], params["y"], params.get("z", 0.0), e)
            for e in range(1, int(epoch) + 1)
        )
        assert float(acc) == pytest.approx(uninterrupted), (config, epoch, number)
    for config, intervals in spans.items():  # I2
        intervals.sort()
        for (_, end, pid), (start_next, _, pid_next) in itertools.pairwise(intervals):
            assert start_next >= end or pid == pid_next, f"configuration {config} trained twice at once"
    for (config, epoch), numbers in trained.items():  # I4
        again = [n for n in numbers if not by_trial[n].user_attrs.get("fault")]
        assert len(again) <= 1, f"epoch {epoch} of configuration {config} trained by {numbers}"
