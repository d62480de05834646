"""Shared fixtures: the repository root, the real Fashion-MNIST loaded once per test session, and the
real engines the tests start on loopback: PostgreSQL (shared studies) and a one-node SLURM cluster."""

from __future__ import annotations

import os

# One CPU thread per torch process, here and in every process a test starts (before torch is imported):
# the xdist workers already keep every core busy, and torch's own threads would only wait on each other
# (12% less CPU for the end-to-end sweep, the same trials). This is what `torch_threads=1` does for a
# user whose trials share a CPU; a value set outside wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import slurm_cluster

from jahs_bohb.fashion_mnist import DEBIAN_DIR, FashionMNIST, load_fashion_mnist

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_PASSWORD = "s3cr3t-Pa55"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def fashion() -> FashionMNIST:
    """The real dataset (Debian's dataset-fashion-mnist package), parsed once for all tests."""
    if not DEBIAN_DIR.is_dir():
        pytest.skip(f"Fashion-MNIST is not installed in {DEBIAN_DIR}")
    return load_fashion_mnist(DEBIAN_DIR, download=False)


# --------------------------------------------------------------------------- the order of the files
# The files that take longest, longest first (seconds of the 2-core suite, measured 2026-12-06 with
# both workers busy). ./run.sh test has xdist hand out whole files in collection order (--dist loadfile
# --no-loadscope-reorder): these start at once and the many short files fill the gaps at the end,
# instead of one long file starting last while the other worker idles. Files not named here follow in
# their usual order.
LONGEST_FIRST = (
    "test_faults.py",  # ~90 s: SIGKILL of a joblib worker, PostgreSQL, sweepers killed at random
    "test_sweep_e2e.py",  # ~80 s: the shared train.py sweep, its retrain, W&B runs read back
    "test_slurm.py",  # ~75 s, mostly waiting on the cluster: overlaps well with the CPU-bound ones
    "test_optuna_drop_in.py",  # ~70 s: the official sweeper's example commands, one process each
    "test_sampler_groups.py",  # ~50 s: a sweep per sampler group
    "test_search_quality.py",  # ~45 s where its venv exists
    "test_simulation.py",  # ~30 s: 532 schedules of the fault simulation
    "test_final_evaluation.py",  # ~20 s: an interrupted final evaluation, in process and on the CLI
    "test_sweep_e2e_pareto.py",  # ~27 s
    "test_sweeper_cli.py",  # ~27 s
    "test_sweeper.py",  # ~26 s
    "test_multiseed.py",  # ~25 s
    "test_wandb_unreachable.py",  # ~19 s
    "test_sweeper_dist.py",  # ~18 s with pip's cache warm: a fresh venv from the sweeper's wheel
    "test_train_cli.py",  # ~16 s
    "test_fault_cases.py",  # ~16 s
    "test_migration.py",  # ~12 s: a sweep per difference from the official sweeper
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its order


# --------------------------------------------------------------------------- PostgreSQL
def _pg(*sql: str, database: str = "postgres") -> None:
    for statement in sql:
        psql = ["runuser", "-u", "postgres", "--", "psql", "-q", "-d", database, "-v", "ON_ERROR_STOP=1"]
        subprocess.run([*psql, "-c", statement], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """Debian's PostgreSQL on 127.0.0.1:5432, with a role `jahs` that logs in with a password."""
    if shutil.which("pg_lsclusters") is None or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL is not installed (./run.sh test installs Debian's postgresql)")
    clusters = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True)
    if not clusters.stdout.strip():
        pytest.skip("no PostgreSQL cluster (pg_createcluster has not run)")
    version, name, _port, status = clusters.stdout.split()[:4]
    if status != "online":
        # Several test workers may find it down at once: one start wins, the others fail harmlessly, and
        # every worker then waits until the server accepts connections ("online" comes earlier).
        subprocess.run(["pg_ctlcluster", version, name, "start"], capture_output=True, timeout=120)
    _wait_until_postgres_answers(timeout_s=120)
    for attempt in range(5):  # two workers creating the role at once: one of them retries
        try:
            _pg(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jahs') THEN "
                f"CREATE ROLE jahs LOGIN PASSWORD '{POSTGRES_PASSWORD}'; END IF; END $$;",
                f"ALTER ROLE jahs WITH LOGIN PASSWORD '{POSTGRES_PASSWORD}' CREATEDB",
            )
            break
        except subprocess.CalledProcessError:
            if attempt == 4:
                raise
            time.sleep(1.0)
    return f"postgresql://jahs:{POSTGRES_PASSWORD}@127.0.0.1:5432"


def _wait_until_postgres_answers(timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _pg("SELECT 1")
            return
        except subprocess.CalledProcessError as exc:
            if time.monotonic() > deadline:
                stderr = exc.stderr
                raise RuntimeError(f"PostgreSQL did not answer within {timeout_s:.0f} s: {stderr!r}") from exc
            time.sleep(0.5)


@pytest.fixture(scope="session")
def new_postgres_database(postgres_server: str) -> Callable[[], str]:
    """Creates a fresh database and returns its URL: for fixtures wider than one test."""

    def create() -> str:
        database = f"jahs_{uuid.uuid4().hex[:10]}"
        _pg(f"CREATE DATABASE {database} OWNER jahs")
        return f"{postgres_server}/{database}"

    return create


@pytest.fixture
def postgres_url(new_postgres_database: Callable[[], str]) -> str:
    """A fresh database per test, so no study leaks between tests."""
    return new_postgres_database()


# --------------------------------------------------------------------------- SLURM
@pytest.fixture(scope="session")
def slurm() -> Iterator[slurm_cluster.SlurmCluster]:
    """A one-node SLURM cluster with accounting, on loopback, private to this session (see
    tests/slurm_cluster.py). Without root or the packages the tests that use it skip, saying so; with
    them, a cluster that does not start is an error (CI must run these tests)."""
    reason = slurm_cluster.missing_requirements()
    if reason:
        pytest.skip(reason)
    # On /dev/shm where there is one: MariaDB initialises its files there in a second, not five.
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="slurm-", dir=shm if shm.is_dir() else None))
    try:
        cluster = slurm_cluster.start(root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
