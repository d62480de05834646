"""What a sweep prints: its own lines on the console, everything else in log files.

At the default `hydra.sweeper.console=trials` the console shows the sweeper's lines only (the start,
one line per trial, the final evaluation, where the results are). The launcher's banners, Optuna's and
other libraries' messages and warnings go to `sweep.log` in the sweep directory, and each job logs to
its own file (Hydra's job log) instead of the console. `console=full`, or `hydra.verbose`, prints
everything as Hydra would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import configure_log
from omegaconf import DictConfig, OmegaConf, flag_override

SWEEP_LOG = "sweep.log"
SWEEPER_LOGGER = "hydra_plugins.hydra_bohb_sweeper"
CONSOLE_MODES = ("trials", "full")


def quiet(config: DictConfig, sweep_dir: Path) -> list[str]:
    """Send the sweep process's logging to `sweep.log` only, give the sweeper's own logger a console
    handler of its own (and `sweep.log`), and return the job overrides that take the console off the
    jobs' logging.

    The sweep's logging config (`hydra.hydra_logging`) is rewritten in place, because launchers re-apply
    it before each batch of jobs. The sweeper's logger does not propagate to the root logger: jobs run
    in this process (the basic launcher) reconfigure the root for their own log files, and the sweeper's
    lines must neither land there nor depend on it."""
    hydra_cfg = config.hydra
    sweep_log = sweep_dir.resolve() / SWEEP_LOG
    sweep_dir.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("[%(asctime)s][HYDRA] %(message)s")
    with flag_override(hydra_cfg, ["readonly", "struct"], False):
        sweep_logging = hydra_cfg.hydra_logging
        if sweep_logging is not None and sweep_logging.get("root") is not None:
            handlers = sweep_logging.get("handlers") or {}
            file_handler = {"class": "logging.FileHandler", "filename": str(sweep_log)}
            if formatters := list(sweep_logging.get("formatters") or {}):
                file_handler["formatter"] = formatters[0]
                formatter = logging.Formatter(sweep_logging.formatters[formatters[0]].get("format"))
            sweep_logging.handlers = {**handlers, "sweep_log": file_handler}
            kept = [
                name for name in sweep_logging.root.get("handlers") or [] if not _is_console(handlers[name])
            ]
            sweep_logging.root.handlers = [*kept, "sweep_log"]
    configure_log(hydra_cfg.hydra_logging, hydra_cfg.verbose)
    sweeper = logging.getLogger(SWEEPER_LOGGER)
    console = logging.StreamHandler(sys.stdout)
    file = logging.FileHandler(sweep_log)
    for handler in (console, file):
        handler.setFormatter(formatter)
    for old in sweeper.handlers:  # an earlier sweep in this process
        old.close()
    sweeper.handlers[:] = [console, file]
    sweeper.setLevel(logging.INFO)
    sweeper.propagate = False
    # Optuna's own stderr handler would print around all this: its records go to the root (sweep.log).
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    logging.captureWarnings(True)  # warnings of jobs run in this process go to the logs too
    # submitit (hydra/launcher=submitit_*) sets up its own stderr handler when first imported, which is
    # at the first launch, after this: this keeps it from doing so, so its messages reach sweep.log.
    os.environ.setdefault("SUBMITIT_LOG_LEVEL", "NOCONFIG")
    return _job_overrides(hydra_cfg.job_logging)


def _is_console(handler: Any) -> bool:
    return handler.get("class") == "logging.StreamHandler" or "stream" in handler


def _job_overrides(job_logging: DictConfig | None) -> list[str]:
    """`hydra.job_logging.root.handlers` without its console handlers (none if nothing changes)."""
    if job_logging is None or job_logging.get("root") is None:
        return []
    handlers = job_logging.get("handlers") or {}
    root_handlers = list(job_logging.root.get("handlers") or [])
    kept = [name for name in root_handlers if name in handlers and not _is_console(handlers[name])]
    if kept == root_handlers:
        return []
    return [f"hydra.job_logging.root.handlers=[{','.join(kept)}]"]


def wants_quiet(mode: str, verbose: Any) -> bool:
    return mode == "trials" and not (OmegaConf.is_list(verbose) or verbose)


@contextlib.contextmanager
def optuna_warnings_only(enabled: bool) -> Iterator[None]:
    """Optuna's INFO lines (e.g. "A new study created") off while the console is not yet quiet."""
    if not enabled:
        yield
        return
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
