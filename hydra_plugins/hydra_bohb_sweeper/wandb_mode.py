"""Which mode a W&B run starts in: the one choice the sweep's own run and its jobs' runs must agree on.

`auto` means online with credentials and offline without them, so a machine without a W&B account
never prompts. Online needs the W&B server: when it cannot be reached within a few seconds (a cluster
node with no route to it), or an online run already failed in this process, runs go offline instead
and one line per process says why; the runs stay on disk for `wandb sync`. Standard library only at
import (Hydra's plugin scan imports this module); W&B itself is never imported here.
"""

# No `from __future__ import annotations`, as in client.py (Hydra's plugin scan runs this module before
# it is in sys.modules).
import logging
import netrc
import os

__all__ = ["wandb_mode", "wandb_offline_because", "wandb_run_mode"]


def wandb_mode(mode: str | None) -> str:
    """W&B's mode, with `auto`: WANDB_MODE if set, else online with credentials and offline without
    (so a machine without a W&B account never prompts). The sweep's own run resolves it the same way.
    Runs start in `wandb_run_mode`, which also makes sure that online can work."""
    if mode not in (None, "auto"):
        return str(mode)
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if _wandb_credentials() else "offline"


def wandb_run_mode(mode: str | None) -> str:
    """The mode to start a W&B run in now: `wandb_mode(mode)`, but offline when the W&B server cannot be
    reached within a few seconds (a cluster node with no route to it) or an online run already failed
    in this process (`wandb_offline_because`). One warning line per process says why; the run is kept
    on disk for `wandb sync` and the job trains on, where `wandb.init` would wait two minutes and raise."""
    resolved = wandb_mode(mode)
    if resolved != "online":
        return resolved
    server = _wandb_server()
    if server not in _wandb_out_of_reach:
        _wandb_out_of_reach[server] = _unreachable(server)
    reason = _wandb_out_of_reach[server]
    return "online" if reason is None else wandb_offline_because(reason)


def wandb_offline_because(reason: "str | Exception") -> str:
    """Keep this process's W&B runs offline from now on, saying why once; returns "offline".

    `reason`: a sentence, or the exception of an online `wandb.init` that failed (no API key, a refused
    one); the caller then starts the run offline."""
    if isinstance(reason, Exception):
        first_line = (str(reason).strip().splitlines() or [""])[0]
        reason = f"an online run did not start ({type(reason).__name__}: {first_line})"
    server = _wandb_server()
    if server not in _wandb_told:
        _wandb_told.add(server)
        logging.getLogger(__name__).warning(
            "W&B: %s; logging offline instead (upload later with `wandb sync`)", reason
        )
    _wandb_out_of_reach[server] = reason
    return "offline"


WANDB_REACH_TIMEOUT_S = 3.0
# Per process and W&B server: why it is out of reach (None: it answered), and whether that was said.
_wandb_out_of_reach: dict[str, str | None] = {}
_wandb_told: set[str] = set()


def _wandb_server() -> str:
    return os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"


def _wandb_credentials() -> bool:
    """An API key (or identity token) for the W&B server, where `wandb login` or the user put one."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    from urllib.parse import urlsplit

    try:
        entries = netrc.netrc(os.environ.get("NETRC") or None)
    except (OSError, netrc.NetrcParseError):
        return False
    return entries.authenticators(urlsplit(_wandb_server()).netloc) is not None


def _unreachable(server: str) -> str | None:
    """Why no TCP connection opens to the W&B server (or to the proxy in between, as W&B would use),
    or None when one does. Bounded in time, name resolution included (it has no timeout of its own)."""
    import socket
    import threading
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    url = urlsplit(server)
    host, via = url.hostname or "", ""
    proxy = getproxies().get(url.scheme)
    if proxy and not proxy_bypass(host):
        url, via = urlsplit(proxy if "://" in proxy else f"http://{proxy}"), " through the proxy"
    address = (url.hostname or "", url.port or (443 if url.scheme == "https" else 80))
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=WANDB_REACH_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as exc:  # refused, timed out, no route, unknown host
            outcome.append(exc.strerror or str(exc) or type(exc).__name__)

    thread = threading.Thread(target=connect, name="wandb-reach", daemon=True)
    thread.start()
    thread.join(WANDB_REACH_TIMEOUT_S + 0.5)
    if outcome and outcome[0] is None:
        return None
    why = outcome[0] if outcome else f"no answer in {WANDB_REACH_TIMEOUT_S:.0f} s"
    return f"{server} is out of reach{via} ({address[0]}:{address[1]}: {why})"
