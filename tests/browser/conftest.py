"""Fixtures of the browser test: a JupyterLab of its own, and one Chromium driven by Playwright.

JupyterLab is started from this environment (``sys.executable``) on 127.0.0.1, a free port and a
random token, over a copy of ``notebooks/`` (outputs of the run never reach the repository), with
its configuration, settings and workspaces in a temporary folder so that nothing of the user's
own JupyterLab is read or written. At the end its kernels are shut down through its REST API and
the server process it started, and only that one, is stopped.

Chromium is the system's (Debian: ``apt-get install -y chromium``, as root, once); Playwright's
own browser download is never used. Set ``SSD_EDU_CHROMIUM`` for another path.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SSD_EDU_CHROMIUM", "/usr/bin/chromium")
# the flags the closed network needs: without the background ones Chromium's own connections
# (updates, sync, field trials) are refused and logged as errors. Playwright adds --headless and
# a fresh --user-data-dir of its own for every launch.
CHROMIUM_ARGS = [
    "--no-sandbox",  # as root (CI, containers) Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# JupyterLab settings for a test run: every cell in the page (no windowing, so all outputs can be
# read), no autosave, no news or update checks (no network)
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
SERVER_START_TIMEOUT = 120  # s; a busy 2-core machine takes about 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server this test started: its address, token and REST API."""

    def __init__(self, home: Path, log: Path):
        self.home, self.log_path = home, log
        self.port, self.token = free_port(), secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernels draw inline
        env.update(
            SSD_EDU_SMOKE="1",  # the notebooks' small but complete runs, as under nbval
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        )
        for plugin, values in LAB_SETTINGS.items():
            path = home / "settings" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        command = [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={home}", "--LabApp.expose_app_in_browser=True",
        ] + (["--allow-root"] if os.geteuid() == 0 else [])  # fmt: skip
        self._log = log.open("w")
        self.process = subprocess.Popen(
            command, env=env, cwd=home, stdout=self._log, stderr=subprocess.STDOUT
        )

    def api(self, method: str, path: str):
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"JupyterLab exited ({code}): see {self.log_path}")
            try:
                self.api("GET", "/api/status")
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab silent for {SERVER_START_TIMEOUT} s: see {self.log_path}")

    def shut_down_kernels(self) -> None:
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")  # waits for the kernel to exit

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                self.shut_down_kernels()
        finally:
            self.process.terminate()  # SIGTERM: the server stops cleanly
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._log.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder for screenshots, timings and JupyterLab's log: build/browser, or
    $SSD_EDU_BROWSER_OUT; emptied first, so that it holds this run only."""
    path = Path(os.environ.get("SSD_EDU_BROWSER_OUT") or ROOT / "build" / "browser")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    print(f"\nbrowser test: screenshots, timings and JupyterLab's log in {path}")
    return path


@pytest.fixture(scope="session")
def lab(artifacts, tmp_path_factory):
    home = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", home / "notebooks")
    server = Lab(home, artifacts / "jupyterlab.log")
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install it once, as root, with "
            "`apt-get update && apt-get install -y chromium` (or set SSD_EDU_CHROMIUM to it)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ModuleNotFoundError:
        pytest.fail("playwright is not installed in this environment: run `make browser-env`")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
