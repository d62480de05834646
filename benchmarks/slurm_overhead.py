"""Per-trial overhead of a SLURM trial against a joblib trial, and what one PostgreSQL study costs per worker.

Overhead: the same tiny job (the cheap app, one epoch, no sleep: the job itself takes microseconds) as N
sequential trials, three ways in one run: in the sweeper's process (basic launcher), in a joblib worker
process (reused from trial to trial), and as a SLURM job of its own through submitit (conf/hydra/launcher/
slurm.yaml). A trial's time is the study's start -> complete (ask to tell, as the sweeper sees it); for
SLURM it is split, from submitit's job logs, into submit + queue + process start, the job's own run
(unpickling, imports, Hydra, the storage), and picking up the result. The cluster is the one in
$SLURM_CONF, or else the tests' one-node cluster (tests/slurm_cluster.py, started and stopped here).

Storage (with --postgres URL): what a study in PostgreSQL costs as it grows and as workers are added: the
connections a sweeper process and a job process hold (pg_stat_activity), and the time of the calls a
trial makes (ask, report + should_prune per epoch, tell, a heartbeat) against studies of 100 to 3000
trials, directly and through Optuna's gRPC storage proxy when grpcio is installed.

    python benchmarks/slurm_overhead.py --trials 8 --postgres postgresql://user:pw@127.0.0.1/db
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import common
import optuna
import yaml

ROOT = common.ROOT
APP = Path("tests") / "cheap_app" / "cheap_task.py"
# One epoch, no pruning, no sleep: the job itself takes microseconds, so a trial's time is overhead.
TINY_JOB = ("hydra/sweeper/pruner=none", "hydra.sweeper.budget=1", "hydra.sweeper.n_jobs=1")
LAUNCHERS: dict[str, tuple[str, ...]] = {
    "basic": (),
    "joblib": ("hydra/launcher=joblib", "hydra.launcher.n_jobs=1"),
    "slurm": (
        f"hydra.searchpath=[file://{ROOT / 'conf'}]", "hydra/launcher=slurm",
        "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
    ),
}  # fmt: skip
SUBMITIT_TIME = re.compile(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\) - (.*)")
STUDY_SIZES = (100, 1000, 3000)
EPOCHS = 9


# ------------------------------------------------------------------------------------------------ overhead
def load_test_cluster() -> ModuleType:
    """tests/slurm_cluster.py, the tests' one-node cluster (not a package: loaded from its file)."""
    spec = importlib.util.spec_from_file_location("slurm_cluster", ROOT / "tests" / "slurm_cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations there
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def slurm_cluster() -> Iterator[dict[str, str]]:
    """The environment for SLURM commands: $SLURM_CONF's cluster, or the tests' cluster started here."""
    if os.environ.get("SLURM_CONF"):
        yield {"SLURM_CONF": os.environ["SLURM_CONF"], "cluster": "$SLURM_CONF"}
        return
    module = load_test_cluster()
    reason = module.missing_requirements()
    if reason:
        raise SystemExit(f"error: no SLURM cluster: {reason}; or point SLURM_CONF at one")
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="slurm-bench-", dir=shm if shm.is_dir() else None))
    cluster = module.start(root)
    try:
        yield {"SLURM_CONF": str(cluster.conf), "cluster": "tests/slurm_cluster.py (one node, loopback)"}
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def submitit_times(sweep_dir: Path, trial: optuna.trial.FrozenTrial) -> dict[str, datetime]:
    """When the trial's SLURM job started Python and when it finished, from submitit's job log."""
    hydra_yaml = Path(trial.user_attrs["output_dir"]) / ".hydra" / "hydra.yaml"
    job_id = str(yaml.safe_load(hydra_yaml.read_text())["hydra"]["job"]["id"])
    found: dict[str, datetime] = {}
    logs = (sweep_dir / ".submitit" / job_id).glob(f"{job_id}_0_log.*")  # .out or .err, by version
    for line in "\n".join(p.read_text() for p in logs).splitlines():
        match = SUBMITIT_TIME.search(line)
        if match is None:
            continue
        when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if match.group(2).startswith("Starting with JobEnvironment"):
            found["python_started"] = when
        elif match.group(2).startswith("Job completed"):
            found["job_done"] = when
    return found


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def overhead(n_trials: int, env: dict[str, str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, launcher in LAUNCHERS.items():
        with tempfile.TemporaryDirectory(prefix=f"overhead-{name}-") as tmp:
            sweep_dir = Path(tmp) / "sweep"
            command = [str(APP), "-m", *launcher, *TINY_JOB, f"hydra.sweeper.n_trials={n_trials}"]
            wall, study = common.run_sweep(command, sweep_dir, "cheap", env=env)
            trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
            if any(t.state != optuna.trial.TrialState.COMPLETE for t in trials):
                raise RuntimeError(f"{name}: not every trial completed: {[t.state.name for t in trials]}")
            seconds = [common.trial_seconds(study)[t.number] for t in trials]
            record: dict[str, Any] = {
                "sweep_wall_s": round(wall, 2),
                "trial_s": [round(s, 3) for s in seconds],
                "first_trial_s": round(seconds[0], 3),
                "median_trial_s": median(seconds),
                "median_later_trial_s": median(seconds[1:]),  # joblib's worker is up by then
            }
            if name == "slurm":
                record["phases_median_s"] = slurm_phases(sweep_dir, trials)
            results[name] = record
    slurm, joblib, basic = (results[n]["median_trial_s"] for n in ("slurm", "joblib", "basic"))
    results["slurm_over_joblib"] = round(slurm / joblib, 1)
    results["slurm_minus_joblib_s"] = round(slurm - joblib, 2)
    results["joblib_minus_basic_s"] = round(joblib - basic, 2)
    return results


def slurm_phases(sweep_dir: Path, trials: list[optuna.trial.FrozenTrial]) -> dict[str, float]:
    phases: dict[str, list[float]] = {"submit_queue_and_python_start": [], "job_run": [], "result_pickup": []}
    for t in trials:
        times = submitit_times(sweep_dir, t)
        assert t.datetime_start is not None and t.datetime_complete is not None
        phases["submit_queue_and_python_start"].append(
            (times["python_started"] - t.datetime_start).total_seconds()
        )
        phases["job_run"].append((times["job_done"] - times["python_started"]).total_seconds())
        phases["result_pickup"].append((t.datetime_complete - times["job_done"]).total_seconds())
    return {name: median(values) for name, values in phases.items()}


# ------------------------------------------------------------------------------------------------- storage
def sweep_connections(url: str, launcher: tuple[str, ...], n_jobs: int) -> dict[str, Any]:
    """Peak connections to the study's database while one sweeper runs `4 x n_jobs` trials, by who holds
    them: the sweeper's process or its jobs (labelled through libpq's PGAPPNAME, which jobs get from
    `hydra.job.env_set`), sampled from pg_stat_activity every 0.1 s."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    query = sqlalchemy.text(
        "SELECT application_name, count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY application_name"
    )
    name = f"connections-{n_jobs}-{'joblib' if launcher else 'basic'}"
    peak = {"bohb-sweeper": 0, "bohb-job": 0, "total": 0}
    with tempfile.TemporaryDirectory(prefix="pg-connections-") as tmp:
        command = [
            sys.executable, str(APP), "-m", f"hydra.sweep.dir={Path(tmp) / 'sweep'}", *launcher,
            f"hydra.sweeper.storage={url}", f"hydra.sweeper.study_name={name}",
            f"hydra.sweeper.n_jobs={n_jobs}", f"hydra.sweeper.n_trials={4 * n_jobs}", "sleep_s=0.3",
            "++hydra.job.env_set.PGAPPNAME=bohb-job",
        ]  # fmt: skip
        env = {**os.environ, "PGAPPNAME": "bohb-sweeper"}
        sweeper = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        while sweeper.poll() is None:
            with contextlib.suppress(sqlalchemy.exc.OperationalError), engine.connect() as conn:
                counts: dict[str, int] = {str(k): int(v) for k, v in conn.execute(query).fetchall()}
                for who in ("bohb-sweeper", "bohb-job"):
                    peak[who] = max(peak[who], counts.get(who, 0))
                peak["total"] = max(peak["total"], sum(counts.values()))
            time.sleep(0.1)
        _, err = sweeper.communicate()
        if sweeper.returncode != 0:
            raise RuntimeError(f"sweep failed: {err.decode()[-2000:]}")
    engine.dispose()
    return {
        "launcher": "joblib (a process per worker)" if launcher else "basic (jobs in the sweeper's process)",
        "n_jobs": n_jobs,
        "peak_sweeper_process": peak["bohb-sweeper"],
        "peak_all_jobs": peak["bohb-job"],
        "peak_total": peak["total"],
    }


def filled_study(storage: optuna.storages.BaseStorage, name: str, n: int) -> optuna.Study:
    """A study of n finished trials, each with EPOCHS intermediate values, as a long sweep leaves it."""
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    dist: dict[str, optuna.distributions.BaseDistribution] = {
        "x": optuna.distributions.FloatDistribution(0, 1)
    }
    for i in range(n):
        x = (i * 0.618) % 1
        curve = {e: x * (1 - 0.5**e) for e in range(1, EPOCHS + 1)}
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": x}, distributions=dist, value=curve[EPOCHS], intermediate_values=curve
            )
        )
    return study


def timed(fn: Any, repeats: int = 5) -> float:
    """Median milliseconds of `fn()` over `repeats` calls."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1000, 1)


def trial_calls(open_storage: Any, study_name: str) -> dict[str, float]:
    """Milliseconds of what a sweeper and a job call per trial, on a study that already has its trials.

    The sweeper keeps one study object for the whole sweep, so its reads are incremental (Optuna caches
    finished trials): `ask` (TPE reads the trials), `tell`, a heartbeat. A job attaches to its trial in a
    fresh study object (a SLURM job in a fresh process, too), so its first report + should_prune reads
    the whole study (Hyperband compares the trials of the bracket); later epochs are incremental."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, group=True, constant_liar=True)
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS, reduction_factor=3)
        storage = open_storage()
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
    asked: list[optuna.Trial] = []

    def ask() -> None:
        with warnings.catch_warnings():  # the sweeper beats for its jobs itself (see _running/heartbeats.py)
            warnings.simplefilter("ignore", UserWarning)
            trial = study.ask()
        trial.suggest_float("x", 0, 1)
        asked.append(trial)

    out = {"sweeper_ask_ms": timed(ask)}
    number = asked[-1].number

    def job_first_epoch() -> None:  # a job's first epoch: a fresh study object reads the whole study
        job_study = optuna.load_study(study_name=study_name, storage=open_storage(), pruner=pruner)
        trial = optuna.Trial(
            job_study, job_study._storage.get_trial_id_from_study_id_trial_number(job_study._study_id, number)
        )
        with warnings.catch_warnings():  # epoch 1 again, in each repeat
            warnings.simplefilter("ignore", UserWarning)
            trial.report(0.5, 1)
        trial.should_prune()

    out["job_first_epoch_ms"] = timed(job_first_epoch, repeats=3)
    trial = asked[-1]
    epoch = iter(range(2, 100))

    def later_epoch() -> None:
        trial.report(0.5, next(epoch))
        trial.should_prune()

    out["job_later_epoch_ms"] = timed(later_epoch)
    if hasattr(storage, "record_heartbeat"):
        out["heartbeat_ms"] = timed(lambda: storage.record_heartbeat(trial._trial_id))
    out["sweeper_tell_ms"] = timed(lambda: study.tell(asked.pop(), 0.5))
    return out


@contextlib.contextmanager
def grpc_proxy(url: str) -> Iterator[Any]:
    """Optuna's gRPC storage proxy serving `url` in a process of its own: yields a function that opens a
    new client of it (a fresh cache, as in a new job process), or None without grpcio."""
    try:
        import grpc  # noqa: F401
    except ImportError:
        yield None
        return
    from optuna.storages import GrpcStorageProxy

    port = load_test_cluster().free_ports(1)[0]
    code = (
        "import optuna, sys; optuna.logging.set_verbosity(optuna.logging.WARNING); "
        # get_storage, not RDBStorage: the proxy then caches finished trials, as Optuna's docs advise.
        "optuna.storages.run_grpc_proxy_server(optuna.storages.get_storage(sys.argv[1]), "
        "host='127.0.0.1', port=int(sys.argv[2]))"
    )
    server = subprocess.Popen([sys.executable, "-c", code, url, str(port)], stderr=subprocess.DEVNULL)

    def client() -> optuna.storages.BaseStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            proxy = GrpcStorageProxy(host="127.0.0.1", port=port)
        proxy.wait_server_ready(timeout=60)
        return proxy

    try:
        client()
        yield client
    finally:
        server.terminate()
        server.wait(timeout=30)


def storage_scale(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {"connections": [sweep_connections(url, (), 1)]}
    for n in (1, 2, 4):
        joblib = ("hydra/launcher=joblib", f"hydra.launcher.n_jobs={n}")
        out["connections"].append(sweep_connections(url, joblib, n))
    print(f"  connections: {out['connections']}", flush=True)

    def direct() -> optuna.storages.BaseStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120)

    by_size: dict[str, Any] = {}
    with grpc_proxy(url) as proxy:
        for n in STUDY_SIZES:
            name = f"scale-{n}"
            filled_study(direct(), name, n)
            row = {"direct": trial_calls(direct, name)}
            if proxy is not None:
                row["grpc_proxy"] = trial_calls(proxy, name)
            by_size[str(n)] = row
            print(f"  study of {n} trials: {row}", flush=True)
    out["calls_ms_by_study_size"] = by_size
    out["grpc_proxy"] = "measured" if "grpc_proxy" in by_size[str(STUDY_SIZES[0])] else "grpcio not installed"
    return out


# ---------------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = common.parser(__doc__, "slurm_overhead")
    parser.add_argument("--trials", type=int, default=8, help="sequential trials per launcher (0: skip)")
    parser.add_argument("--postgres", help="a PostgreSQL URL to measure the storage on (an empty database)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    report = common.new_report("per-trial time of a tiny job: SLURM job vs joblib worker vs in-process")
    if args.trials:
        with slurm_cluster() as cluster:
            path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
            report["cluster"] = cluster["cluster"]
            report["overhead"] = overhead(args.trials, {"SLURM_CONF": cluster["SLURM_CONF"], "PATH": path})
        common.write_result(report, args.out)
        o = report["overhead"]
        print(
            f"median seconds per trial: SLURM {o['slurm']['median_trial_s']}, joblib "
            f"{o['joblib']['median_trial_s']}, in-process {o['basic']['median_trial_s']}: SLURM/joblib = "
            f"{o['slurm_over_joblib']}x; SLURM phases {o['slurm']['phases_median_s']}",
            flush=True,
        )
    if args.postgres:
        report["storage"] = storage_scale(args.postgres)
        common.write_result(report, args.out)
    print(f"on {report['machine']['device_name']}; written to {args.out}")


if __name__ == "__main__":
    main()
