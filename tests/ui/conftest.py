"""Fixtures for the UI tests: a small real run, `scaleenv ui` as a real server process, and
headless Chromium from Debian's packages driven through WebDriver (chromedriver)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scaleenv._runner import project, summary
from scaleenv._store.log import Log
from tests.conftest import copy_log, roll_out
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The flags that work on these machines (see the machine notes): no sandbox as root, no
# GPU, and no background networking (the network is closed; Chromium would keep trying).
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000"]


@pytest.fixture(scope="session")
def ui_run(template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A small real run (sim LLM, real sandbox, real LMDB): the suite's template rolled out,
    two episodes per task; and its summary."""
    path = roll_out(copy_log(template, tmp_path_factory.mktemp("ui_run") / "log"), 2)
    with Log.open(path, readonly=True) as log:
        return path, summary(project(log))


class UiServer:
    """`scaleenv ui` in its own process (the way a user runs it), on a free port."""

    def __init__(self, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        """``args``: more options (``--token``, ``--host``, ...); ``env``: variables to set
        (``SCALEENV_TOKEN``); the caller's ``SCALEENV_TOKEN`` is never inherited."""
        self.log = log
        environ = {k: v for k, v in os.environ.items() if k != "SCALEENV_TOKEN"} | (env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scaleenv", "ui", "--log", str(log), "--port", "0", "--json", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"scaleenv ui did not start: {err}")
        self.info = json.loads(line)
        self.url = self.info["url"].rstrip("/")
        self.port = self.info["port"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


@pytest.fixture(scope="session")
def ui_server(ui_run: tuple[Path, dict[str, Any]]) -> Iterator[UiServer]:
    server = UiServer(ui_run[0])
    yield server
    server.close()


def _browser_missing() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if not missing:
        return None
    return (f"{' and '.join(missing)} not installed: Debian's chromium and chromium-driver packages "
            "(apt-get install -y chromium chromium-driver; .ci/run installs them)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium through WebDriver. Skips only where the browser cannot exist here;
    under CI (CI=true: .ci/run installs the browser) a missing browser is a failure."""
    reason = _browser_missing()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="scaleenv-ui-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [*CHROME_FLAGS, f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
