"""A finished sweep's study in optuna-dashboard, as a user opens it: the real `optuna-dashboard` command on
loopback, rendered by a real headless browser (Debian's chromium through chromedriver).

The dashboard is a JavaScript app: its pages are empty HTML until the bundle has fetched the study from
the server's API, so the checks wait for what a person reads on the rendered page.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sweeps import storage_url, sweep_in_process

N_TRIALS = 6
OBJECTIVE = "acc"  # the cheap app's hydra.sweeper.objective, which the sweeper names the metric after
WAIT_S = 60  # generous: on a busy 2-core machine chromium takes ~5 s to run the dashboard's 2 MB bundle
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # chromium refuses to run as root with its sandbox
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # No connections to Google's services: offline machines otherwise log failures and wait on them.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def dashboard(storage: str, log: Path) -> Iterator[str]:
    """`optuna-dashboard <storage>` on a free loopback port; yields its URL, stops it afterwards."""
    pytest.importorskip(
        "optuna_dashboard", reason='optuna-dashboard is not installed (pip install ".[dashboard]")'
    )
    command = str(Path(sys.executable).parent / "optuna-dashboard")
    for _attempt in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        with log.open("w") as out:
            server = subprocess.Popen(
                [command, storage, "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=out
            )
        try:
            deadline = time.monotonic() + WAIT_S
            while server.poll() is None and time.monotonic() < deadline:
                if answers(f"http://127.0.0.1:{port}/api/studies"):
                    yield f"http://127.0.0.1:{port}"
                    return
                time.sleep(0.2)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    pytest.fail(f"optuna-dashboard did not start: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def headless_chromium(profile: Path) -> Iterator[Any]:
    """Debian's chromium driven by its chromedriver; skips where either is missing or cannot start."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("needs Debian's chromium and chromium-driver (./run.sh test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    try:
        browser = webdriver.Chrome(options=options, service=Service(driver, log_output=subprocess.DEVNULL))
    except WebDriverException as exc:
        pytest.skip(f"headless chromium did not start: {str(exc.msg or exc).splitlines()[0]}")
    try:
        yield browser
    finally:
        browser.quit()


@pytest.mark.slow
def test_sweep_study_opens_in_optuna_dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager: never look for drivers online
    sweep = sweep_in_process(tmp_path / "sweep", f"hydra.sweeper.n_trials={N_TRIALS}")
    sweep.assert_ok()
    assert len(sweep.configs) == N_TRIALS
    n_run = len(sweep.trials)  # the configurations' segments: paused ones resumed in later trials

    with (
        dashboard(storage_url(sweep.sweep_dir), tmp_path / "dashboard.log") as url,
        headless_chromium(tmp_path / "chromium-profile") as browser,
    ):
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
            TimeoutException,
        )
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        def wait_for(what: str, condition: Callable[[Any], Any]) -> Any:
            # The app re-renders as its data arrives: an element found a moment ago may be gone; try again.
            wait = WebDriverWait(
                browser, WAIT_S, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
            )
            try:
                return wait.until(condition)
            except TimeoutException:
                shot = tmp_path / "dashboard.png"
                browser.save_screenshot(str(shot))
                pytest.fail(f"the dashboard never showed {what}; page: {page_text()[:500]!r}; see {shot}")

        def page_text() -> str:
            return str(browser.execute_script("return document.body.innerText"))

        def plot_labels() -> list[str]:
            return list(
                browser.execute_script(
                    "return Array.from(document.querySelectorAll('.js-plotly-plot text'))"
                    ".map(e => e.textContent)"
                )
            )

        # The study list: the study by name; a click opens it (in the app, no page reload).
        browser.get(f"{url}/dashboard")
        study_link = (By.XPATH, f"//a[contains(@href, '/studies/') and contains(., '{sweep.study_name}')]")
        wait_for("the study in the list", lambda b: b.find_element(*study_link).click() or True)
        # The study page: its history plot names the objective as the sweep did (not "Objective 0").
        wait_for("the objective's name on the history plot", lambda b: OBJECTIVE in plot_labels())
        assert "Objective 0" not in plot_labels()
        assert f"{sweep.study_name} (id=" in page_text()
        # The trial list counts the study's trials.
        trials_list = (By.CSS_SELECTOR, "li[title='Trials (List)'] a")
        wait_for("the link to the trial list", lambda b: b.find_element(*trials_list).click() or True)
        wait_for(f"'{n_run} Trials'", lambda b: f"{n_run} Trials" in page_text())
        for number in range(n_run):
            assert f"Trial {number}" in page_text()
