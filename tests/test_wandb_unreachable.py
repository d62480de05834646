"""W&B out of reach (a cluster node with no route to its server) or online without credentials: a job says
so in one line, keeps its run offline on disk (for `wandb sync` later) and trains on, within seconds; a
sweep completes with offline runs for every trial and for itself (the real commands run so in
test_train_cli.py and test_sweep_e2e.py).

W&B is pointed at loopback: a closed port (nothing listens: refused), a listener whose queue is full (the
connection hangs: a route that drops packets), or a listener that accepts (reachable, but no API key).
Runs are read back with W&B's own reader, `wandb leet inspect`.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wandb_runs import FAKE_KEY, closed_port, inspect, unreachable_env, wandb_lines

from hydra_plugins.hydra_bohb_sweeper import wandb_mode
from jahs_bohb import tracking

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "data.limit_train=200", "data.limit_val=200", "model.n_conv_layers=1", "model.n_fc_layers=1",
    "model.n_filters_1=8", "model.n_neurons_1=512", "trainer.enable_progress_bar=false",
]  # fmt: skip


@pytest.fixture
def fresh_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process has not checked any W&B server yet, nor said anything about one."""
    monkeypatch.setattr(wandb_mode, "_wandb_out_of_reach", {})
    monkeypatch.setattr(wandb_mode, "_wandb_told", set())
    for name in ("WANDB_MODE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that completes TCP handshakes (and never answers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock


def warnings_about_wandb(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("W&B:")]


# ------------------------------------------------------------------------------ the check, in-process
@pytest.mark.usefixtures("fresh_client")
def test_refused_server_is_offline_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("WANDB_BASE_URL", url)
    caplog.set_level(logging.WARNING)
    modes = [wandb_mode.wandb_run_mode(mode) for mode in ("auto", "online", "auto", "online")]
    assert modes == ["offline"] * 4
    (line,) = warnings_about_wandb(caplog)
    assert f"{url} is out of reach" in line and "refused" in line and "wandb sync" in line
    # What is not online is left alone, and disabled stays disabled.
    assert wandb_mode.wandb_run_mode("disabled") == "disabled"
    assert wandb_mode.wandb_run_mode("offline") == "offline"


@pytest.mark.usefixtures("fresh_client")
def test_hanging_server_is_offline_after_the_check_gives_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A listener with a full accept queue: the kernel drops further SYNs, as a route without a reply does.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        queued = [socket.socket() for _ in range(3)]
        for sock in queued:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        time.sleep(0.2)
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
        caplog.set_level(logging.WARNING)
        # The check gives up after WANDB_REACH_TIMEOUT_S (3 s; here 1 s, and no timing asserted).
        monkeypatch.setattr(wandb_mode, "WANDB_REACH_TIMEOUT_S", 1.0)
        mode = wandb_mode.wandb_run_mode("online")
        for sock in queued:
            sock.close()
    if mode == "online":
        pytest.skip("this kernel completed the handshake on a full accept queue")
    assert mode == "offline"
    (line,) = warnings_about_wandb(caplog)
    assert "out of reach" in line


@pytest.mark.usefixtures("fresh_client")
def test_online_run_that_fails_to_start_goes_offline_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, listener: socket.socket
) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
    caplog.set_level(logging.WARNING)
    assert wandb_mode.wandb_run_mode("online") == "online"  # the server answers the check
    started: list[str] = []

    def start(kwargs: dict[str, Any]) -> str:
        started.append(kwargs["mode"])
        if kwargs["mode"] == "online":
            raise RuntimeError("No API key configured. Use `wandb login` to log in.\nmore detail")
        return "a run"

    assert tracking.start_run(start, {"mode": "online"}) == "a run"
    assert started == ["online", "offline"]
    (line,) = warnings_about_wandb(caplog)
    assert "RuntimeError: No API key configured" in line and "more detail" not in line
    # Later runs in this process go offline straight away, silently.
    assert wandb_mode.wandb_run_mode("online") == "offline"
    assert len(warnings_about_wandb(caplog)) == 1
    # An offline run that fails is a real error.
    with pytest.raises(RuntimeError):
        tracking.start_run(
            lambda kwargs: (_ for _ in ()).throw(RuntimeError("disk full")), {"mode": "offline"}
        )


# ------------------------------------------------------------------------------ the real command
# W&B out of reach in real commands: a single run in test_train_cli.py, a sweep in test_sweep_e2e.py.
@pytest.mark.slow
def test_online_without_credentials_trains_offline(tmp_path: Path, listener: socket.socket) -> None:
    # The server answers; W&B itself refuses to start online without an API key.
    env = unreachable_env(tmp_path, WANDB_BASE_URL=f"http://127.0.0.1:{listener.getsockname()[1]}")
    del env["WANDB_API_KEY"]
    result = subprocess.run(
        [sys.executable, "train.py", f"hydra.run.dir={tmp_path / 'run'}", *TINY, "trainer.max_epochs=1",
         "logger.wandb.mode=online"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL,  # no terminal: W&B must never prompt for a login
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = wandb_lines(result.stdout + result.stderr)
    assert "an online run did not start" in line and "API key" in line
    (run_dir,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert inspect(run_dir)["state"] == "finished"
