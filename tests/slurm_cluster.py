"""A one-node SLURM cluster on loopback for the tests, private to one directory.

Debian's `slurm-wlm`, `slurmdbd`, `munge` and `mariadb-server` (`./run.sh test` installs them): munged on
its own socket, MariaDB + slurmdbd for accounting, slurmctld and slurmd on free ports, one node with this
machine's cores (`proctrack/linuxproc`, `task/none`: no cgroups needed). Accounting is not decoration:
submitit learns the state of a job from `sacct`, and without it a job that dies without writing its
result (cancelled, killed, its node lost) is never seen to end, so its sweeper waits for it forever.

Nothing here touches /etc: every command the cluster is used with needs `cluster.env` (SLURM_CONF).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd")
CLIENTS = ("sinfo", "sbatch", "squeue", "sacct", "scancel")
# A job array of sweepers on a 2-core machine also runs each sweeper's trial jobs: jobs may share a core.
OVERSUBSCRIBE = 4
START_TIMEOUT_S = 90
UNFINISHED = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "COMPLETING")


class ClusterUnavailable(RuntimeError):
    """The cluster cannot start here (a missing package, not root); the message says why."""


@dataclass
class SlurmCluster:
    root: Path
    node: str
    cpus: int
    env: dict[str, str]  # this process's environment plus SLURM_CONF: for every SLURM command and job
    _daemons: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    def run(self, *command: str, check: bool = True, timeout: float = 60) -> str:
        """A SLURM client command's stdout; a failure raises with its stderr."""
        proc = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def sbatch(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
        """Submit a batch job; its id (`<id>` or `<id>` of the whole array)."""
        proc = subprocess.run(
            ["sbatch", "--parsable", *args],
            env={**(env or self.env), "SLURM_CONF": str(self.conf)},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sbatch {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout.strip().split(";")[0]

    def queue(self) -> dict[str, str]:
        """Jobs in the queue: id (`<id>_<task>` for array tasks) -> state (PENDING, RUNNING, ...)."""
        out = self.run("squeue", "--noheader", "--array", "--format=%i %T")
        return dict(line.split() for line in out.splitlines() if line.strip())

    def states(self, *job_ids: str, timeout: float = 60) -> dict[str, str]:
        """Accounting's view (sacct) of finished jobs: job id (`<id>_<task>` for array tasks) -> state,
        e.g. COMPLETED, `CANCELLED by 0`, FAILED. slurmctld reports to slurmdbd in the background, so
        this waits until every job (every task of an array) has a final state there."""
        found: dict[str, str] = {}

        def settled() -> bool:
            out = self.run(
                "sacct", "--noheader", "--parsable2", "--format=JobID,State", "-j", ",".join(job_ids)
            )
            rows = [line.split("|") for line in out.splitlines() if line.strip()]
            found.clear()
            found.update({job: state for job, state in rows if "." not in job})
            ids = {job.split("_")[0] for job in found}
            return ids >= set(job_ids) and not any(s in UNFINISHED for s in found.values())

        self.wait_for(f"accounting of jobs {', '.join(job_ids)}", settled, timeout)
        return found

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"SLURM: {what} not within {timeout:.0f} s; logs in {self.root / 'log'}")
            time.sleep(0.2)

    def wait_until_done(self, job_id: str, timeout: float = 300) -> None:
        """Until no task of the job (or array) is left in the queue."""
        self.wait_for(
            f"job {job_id} done",
            lambda: not any(j.split("_")[0] == job_id for j in self.queue()),
            timeout,
        )

    def node_state(self) -> str:
        return self.run("sinfo", "--noheader", "--Node", "--format=%T", check=False).strip()

    def stop(self) -> None:
        """Cancel every job, wait for the node to clean up, then stop the daemons, newest first."""
        if self._daemons and self._running("slurmctld"):
            self.run("scancel", "--full", "--user", "root", check=False)
            with contextlib.suppress(TimeoutError, RuntimeError):
                self.wait_for("cancelled jobs gone", lambda: not self.queue(), timeout=30)
        for _name, proc in reversed(self._daemons):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self._daemons.clear()

    def _running(self, name: str) -> bool:
        return any(n == name and p.poll() is None for n, p in self._daemons)

    def _start(self, name: str, *command: str) -> None:
        log = (self.root / "log" / f"{name}.out").open("ab")
        proc = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._daemons.append((name, proc))

    def _check_alive(self) -> None:
        for name, proc in self._daemons:
            if proc.poll() is not None:
                raise ClusterUnavailable(
                    f"{name} exited with {proc.returncode}: {tail(self.root / 'log' / f'{name}.out')}"
                )


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tail(path: Path, lines: int = 5) -> str:
    if not path.is_file():
        return "(no log)"
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def logs_tail(root: Path) -> str:
    return "; ".join(f"{log.name}: {tail(log, 3)}" for log in sorted((root / "log").glob("*.log")))


def memory_mb() -> int:
    with open("/proc/meminfo") as f:
        total_kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return int(total_kb / 1024 * 0.9)  # slurmd drains a node that reports less than configured


def missing_requirements() -> str | None:
    """Why the cluster cannot start here, or None."""
    if os.geteuid() != 0:
        return "a SLURM cluster needs root (slurmd runs jobs as their user)"
    missing = [c for c in (*DAEMONS, *CLIENTS) if shutil.which(c) is None]
    if missing:
        return (
            f"{', '.join(missing)} not installed "
            "(./run.sh test installs slurm-wlm, slurmdbd, munge and mariadb-server)"
        )
    return None


def slurm_conf(root: Path, node: str, cpus: int, ports: dict[str, int]) -> str:
    return f"""\
# One node on loopback, for tests (tests/slurm_cluster.py).
ClusterName=jahs-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ports["slurmctld"]}
SlurmdPort={ports["slurmd"]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={ports["slurmdbd"]}
AccountingStoragePass={root}/munge/munge.socket
SchedulerType=sched/builtin
# Start a submitted job at once, not at the next 3-second tick (a site's default): a faster queue.
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=2
InactiveLimit=0
MinJobAge=600
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb()} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:{OVERSUBSCRIBE}
"""


def slurmdbd_conf(root: Path, ports: dict[str, int]) -> str:
    return f"""\
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={ports["slurmdbd"]}
SlurmUser=root
PidFile={root}/run/slurmdbd.pid
LogFile={root}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports["mariadb"]}
StorageUser=root
StorageLoc=slurm_acct_db
"""


MARIADB_OPTIONS = (
    "--no-defaults",
    "--user=root",
    "--skip-name-resolve",
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=8M",
)


def start(root: Path, timeout: float = START_TIMEOUT_S) -> SlurmCluster:
    """Start the cluster in `root` and wait until its node is idle; ClusterUnavailable says why not."""
    reason = missing_requirements()
    if reason:
        raise ClusterUnavailable(reason)
    node = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    for sub in ("etc", "munge", "state", "spool", "log", "run", "db"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o700)
    ports = dict(zip(("slurmctld", "slurmd", "slurmdbd", "mariadb"), free_ports(4), strict=True))
    cluster = SlurmCluster(root, node, cpus, {**os.environ, "SLURM_CONF": str(root / "etc" / "slurm.conf")})
    cluster.conf.write_text(slurm_conf(root, node, cpus, ports))
    dbd_conf = root / "etc" / "slurmdbd.conf"
    dbd_conf.write_text(slurmdbd_conf(root, ports))
    dbd_conf.chmod(0o600)  # slurmdbd refuses a config others can read
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    try:
        _bootstrap(cluster, ports, key, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _bootstrap(cluster: SlurmCluster, ports: dict[str, int], key: Path, timeout: float) -> None:
    root = cluster.root
    deadline = time.monotonic() + timeout

    def wait(what: str, ready: Callable[[], bool]) -> None:
        while not ready():
            cluster._check_alive()
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"{what} not ready within {timeout:.0f} s: {logs_tail(root)}")
            time.sleep(0.1)

    munge = root / "munge"
    cluster._start(
        "munged", "munged", "--foreground", "--force", f"--socket={munge / 'munge.socket'}",
        f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'seed'}",
        f"--log-file={root / 'log' / 'munged.log'}",
    )  # fmt: skip
    wait("munged", lambda: (munge / "munge.socket").exists())
    installed = _quiet(
        ["mariadb-install-db", *MARIADB_OPTIONS, f"--datadir={root / 'db'}", "--skip-test-db",
         "--auth-root-authentication-method=normal"],
        timeout,
    )  # fmt: skip
    if installed.returncode != 0:
        raise ClusterUnavailable(f"mariadb-install-db failed: {installed.stdout[-500:]}")
    cluster._start(
        "mariadbd", "mariadbd", *MARIADB_OPTIONS, f"--datadir={root / 'db'}", "--bind-address=127.0.0.1",
        f"--port={ports['mariadb']}", f"--socket={root / 'run' / 'mariadb.sock'}",
        f"--pid-file={root / 'run' / 'mariadb.pid'}",
    )  # fmt: skip
    wait("MariaDB", lambda: _port_open(ports["mariadb"]))
    cluster._start("slurmdbd", "slurmdbd", "-D")
    wait("slurmdbd", lambda: _port_open(ports["slurmdbd"]))
    cluster._start("slurmctld", "slurmctld", "-D", "-i")
    wait("slurmctld", lambda: _port_open(ports["slurmctld"]))
    cluster._start("slurmd", "slurmd", "-D", "-N", cluster.node)
    wait("the node idle", lambda: cluster.node_state() == "idle")
    # Accounting: slurmctld registers the cluster with slurmdbd; sacct answers once it has.
    wait("accounting (sacct)", lambda: _quiet(["sacct", "--noheader"], 10, cluster.env).returncode == 0)


def _quiet(
    command: Sequence[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
