"""The jobs of the final evaluation: launched through the sweep's launcher, on its workers, resumable.

Each job has a folder of its own in the sweep directory (`candidate-<n>/`, `final/`, `baseline/`), and
the record of its outcome is written there (`evaluation.yaml`, atomically) the moment it ends. A job
whose folder already holds a record of the same overrides is not launched again: a final evaluation
that was killed or interrupted resumes with the jobs it had not finished, and a rerun of a finished
sweep trains nothing. A record is written only for a job that ran to its own end (complete, or failed
by itself): one that Ctrl-C or a dead worker cut short runs again.

Jobs run `n_workers` at a time (the sweep's workers: 1 with Hydra's basic launcher, which runs jobs in
this process), and each one's end is one line on the console.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.plugins.launcher import Launcher

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._outputs.files import write_yaml
from hydra_plugins.hydra_bohb_sweeper._running.jobs import identity_overrides
from hydra_plugins.hydra_bohb_sweeper._running.outcome import Outcome, one_line, outcome_of
from hydra_plugins.hydra_bohb_sweeper._running.progress import hms
from hydra_plugins.hydra_bohb_sweeper._running.workers import run_on_workers
from hydra_plugins.hydra_bohb_sweeper._setup.settings import Settings
from hydra_plugins.hydra_bohb_sweeper._study.storage import redact

log = logging.getLogger("hydra_plugins.hydra_bohb_sweeper._running.loop")  # the sweep's own log lines
RECORD_FILE = "evaluation.yaml"  # in each job's folder: its outcome, once it ended


class Evaluations:
    """Launches evaluation jobs through the sweep's launcher; one record per job, by its folder."""

    def __init__(
        self, launcher: Launcher, study: optuna.Study, sweep_dir: Path, settings: Settings, storage: str,
        logging_overrides: list[str], n_workers: int = 1,
    ) -> None:  # fmt: skip
        self.launcher, self.study, self.sweep_dir, self.settings = launcher, study, sweep_dir, settings
        self.storage, self.logging_overrides, self.n_workers = storage, logging_overrides, max(1, n_workers)
        self.job_idx = len(study.get_trials(deepcopy=False))
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def launch(
        self, jobs: dict[str, list[str]], env: dict[str, dict[str, str]] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Folder -> overrides; returns folder -> record. `env`: per folder, the job's role (names.ENV_ROLE,
        else its folder) and more names.ENV_* variables. Raises KeyboardInterrupt on Ctrl-C, once the
        jobs in flight have stopped; what ended before is kept in its folder."""
        env = env or {}
        records: dict[str, dict[str, Any]] = {}
        pending = []
        for folder, overrides in jobs.items():
            kept = self.kept(folder, overrides)
            if kept is None:
                pending.append(folder)
                continue
            records[folder] = kept
            self._show(folder, kept, len(records), len(jobs), "kept from an earlier run")
        if not pending:
            return records
        todo: queue.SimpleQueue[str] = queue.SimpleQueue()
        for folder in pending:
            todo.put(folder)
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                try:
                    folder = todo.get_nowait()
                except queue.Empty:
                    return
                record = self._run(folder, jobs[folder], env.get(folder, {}), stop)
                with self.lock:
                    if record is None:  # cut short by Ctrl-C: nothing recorded, it runs again
                        stop.set()
                        return
                    records[folder] = record
                    self._show(folder, record, len(records), len(jobs))

        def interrupted() -> None:
            stop.set()
            log.warning("BOHB: interrupted; waiting for the evaluations in flight to stop")

        run_on_workers(work, min(self.n_workers, len(pending)), "bohb-final", interrupted)
        if stop.is_set():
            raise KeyboardInterrupt("final evaluation interrupted")
        return records

    def kept(self, folder: str, overrides: list[str]) -> dict[str, Any] | None:
        """The record of this job from an earlier run, if it ran with the same overrides (and the model
        it kept is still there)."""
        path = self.sweep_dir / folder / RECORD_FILE
        try:
            record = yaml.safe_load(path.read_text()) if path.is_file() else None
        except (OSError, yaml.YAMLError):
            return None
        if not isinstance(record, dict) or record.get("overrides") != [redact(o) for o in overrides]:
            return None
        if record.get("model") and not Path(record["model"]).exists():  # its kept weights are gone
            return None
        return record

    def _run(
        self, folder: str, overrides: list[str], env: dict[str, str], stop: threading.Event
    ) -> dict[str, Any] | None:
        extra = dict(env)
        role = extra.pop(names.ENV_ROLE, folder)
        identity = identity_overrides(
            self.study.study_name, self.storage, role, self.settings.budget, extra=extra
        )
        job = [*overrides, *identity, *self.logging_overrides, f"hydra.sweep.subdir={folder}"]
        with self.lock:
            job_idx, self.job_idx = self.job_idx, self.job_idx + 1
        started = time.monotonic()
        record: dict[str, Any] = {"overrides": [redact(o) for o in overrides]}
        try:
            ret = self.launcher.launch([job], initial_job_idx=job_idx)[0]
        except KeyboardInterrupt:
            return None
        except SystemExit as exc:  # a job in this process exited; Lightning exits so on Ctrl-C
            if isinstance(exc.__context__, KeyboardInterrupt):
                return None
            return {**record, "state": names.FAILED, "reason": one_line(exc)}
        except Exception as exc:
            if stop.is_set():  # Ctrl-C reaches the launcher's worker processes too
                return None
            # A launcher's failure (a dead worker): not the job's own doing, so not recorded as its end.
            log.warning("BOHB: %s evaluation could not run: %s", folder, one_line(exc))
            return {**record, "state": names.FAILED, "reason": one_line(exc), "fault": True}
        outcome = outcome_of(ret, self.settings.objectives, len(self.settings.directions))
        if outcome.fault == names.FAULT_INTERRUPTED:
            return None
        output_dir = ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg else self.sweep_dir / folder
        record["output_dir"] = str(output_dir)
        record.update(self._result(outcome))
        model = env.get(names.ENV_SAVE_MODEL)
        if model and Path(model).exists():  # the weights it kept, which the pick's test loads
            record["model"] = model
        record["wall_time_s"] = round(time.monotonic() - started, 1)
        write_yaml(self.sweep_dir / folder / RECORD_FILE, record)
        return record

    def _result(self, outcome: Outcome) -> dict[str, Any]:
        if outcome.state != optuna.trial.TrialState.COMPLETE:
            return {"state": names.FAILED, "reason": outcome.reason}
        value = outcome.values if self.settings.multi_objective else outcome.value
        return {"state": names.COMPLETE, "value": value, "metrics": outcome.metrics}

    def _show(self, folder: str, record: dict[str, Any], done: int, total: int, note: str = "") -> None:
        values = record.get("value")
        values = values if isinstance(values, list) else [values] if values is not None else []
        objectives = self.settings.objectives or ["value"] * len(self.settings.directions)
        numbers = dict(zip(objectives, values, strict=False)) | (record.get("metrics") or {})
        shown = "  ".join(f"{k} {number(v)}" for k, v in numbers.items() if isinstance(v, (int, float)))
        log.info(
            "BOHB: [%d/%d] %-13s %-8s %s  %s", done, total, folder, record["state"].upper(),
            shown or record.get("reason", ""), note or f"elapsed {hms(time.monotonic() - self.started)}",
        )  # fmt: skip


def number(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) and not value.is_integer() else f"{int(value)}"
