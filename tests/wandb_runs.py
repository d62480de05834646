"""W&B as the tests meet it: an environment in which W&B is wanted online but its server is out of reach
(as on this machine, and on a cluster node with no route out), and the runs read back with W&B's own
reader, `wandb leet inspect`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"  # 40 characters, like a real key


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """W&B wanted online (an API key) with its server on a closed loopback port; no other W&B settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and "proxy" not in k.lower()}
    env.pop("HYDRA_FULL_ERROR", None)
    return {
        **env,
        "NETRC": str(tmp_path / "netrc"),  # none: the user's `wandb login` stays out of the test
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
        "WANDB_API_KEY": FAKE_KEY,
        "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}",
        **extra,
    }


def wandb_lines(console: str) -> list[str]:
    """The lines in which the app or the sweeper says something about W&B."""
    return [line for line in console.splitlines() if "W&B: " in line]


def inspect(run_dir: Path) -> dict[str, Any]:
    """A run's state, summary and config, as `wandb leet inspect --summary --json` prints them."""
    wandb = str(Path(sys.executable).parent / "wandb")
    out = subprocess.run(
        [wandb, "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return dict(json.loads(out.stdout))
