"""The browser tests' JupyterLab and Chromium: one server for the whole session, a fresh page per test, and the
helpers every test uses (open a notebook and run all its cells, the images it rendered). Fixtures in conftest.py.

A JupyterLab server on a free loopback port, with a token, the project's kernel and copies of the notebooks in a
temporary folder (autosave can never touch the committed ones); smoke scale, figures and results written to a
temporary folder. Chromium is Debian's (/usr/bin/chromium), driven by Playwright; `make test-browser` installs
both. Without them the test is skipped locally and fails on CI (CI set). Screenshots: build/screenshots/.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from fkdlib.paths import REPO_ROOT

CHROMIUM = Path(os.environ.get("FKD_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("FKD_SCREENSHOTS_DIR", REPO_ROOT / "build" / "screenshots"))
START_S = 120                                           # the server, the browser, the kernel: each starts within this
RUN_S = float(os.environ.get("FKD_BROWSER_RUN_S", 480))  # one notebook's cells at smoke scale, on a busy 2-core CPU
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
NOTEBOOKS = ["00_quickstart.ipynb", "01_feature_kernels.ipynb", "02_multiview_theory.ipynb"]  # those a test opens
SETTINGS = {  # every cell in the DOM (no virtual scrolling), no autosave, no news fetched from the internet
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


def _playwright():
    """Playwright's sync API, or a skip (a failure on CI) saying what is missing."""
    missing = [] if CHROMIUM.exists() else [f"Chromium at {CHROMIUM} (Debian: apt-get install chromium)"]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("the playwright package (pip install playwright)")
    if missing:
        message = f"browser test cannot run, missing {' and '.join(missing)}; `make test-browser` installs them"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server started for the tests, and how to reach it."""

    def __init__(self, root: Path):
        self.root, self.token, self.port = root, secrets.token_hex(16), _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.work, self.runtime, self.figures = root / "notebooks", root / "runtime", root / "figures"
        self.work.mkdir()
        for name in NOTEBOOKS:  # copies without outputs: every figure seen below was drawn by this run
            nb = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            nbformat.write(nb, self.work / name)
        for plugin, values in SETTINGS.items():
            path = root / "settings" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel must keep its inline backend
        env.update(FKD_SCALE="smoke", FKD_PROGRESS="0", FKD_FIGURES_DIR=str(self.figures),
                   FKD_RESULTS_DIR=str(root / "results"), JUPYTER_CONFIG_DIR=str(root / "config"),
                   JUPYTER_RUNTIME_DIR=str(self.runtime), JUPYTER_PREFER_ENV_PATH="1")
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.work}", f"--LabApp.user_settings_dir={root / 'settings'}",
               f"--LabApp.workspaces_dir={root / 'workspaces'}", "--LabApp.news_url=None",
               "--LabApp.extension_manager=readonly"] + (["--allow-root"] if os.geteuid() == 0 else [])
        self.log = root / "jupyterlab.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"JupyterLab did not answer on {self.url} within {START_S} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Shut the kernels and the server down through the API, then make sure: kill what is left, by pid."""
        try:
            for kernel in self.api("kernels"):
                self.api(f"kernels/{kernel['id']}", method="DELETE")
            self.api("shutdown", method="POST")
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for pid in self.kernel_pids():   # kernels run in sessions of their own; theirs name our runtime folder
            os.kill(pid, signal.SIGKILL)

    def kernel_pids(self) -> list[int]:
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if str(self.runtime).encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
        return pids


def _tracked_notebooks() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (REPO_ROOT / "notebooks").glob("*.ipynb")}


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    sync_playwright = _playwright()
    before = _tracked_notebooks()
    server = Lab(tmp_path_factory.mktemp("lab"))
    try:
        server.wait_ready()
        with sync_playwright() as p:
            try:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=START_S * 1000)
            except Exception as err:   # Playwright's own error type names nothing useful to a reader
                pytest.fail(f"Chromium ({CHROMIUM}) did not start (launch timeout {START_S} s): {err}")
            server.browser = browser
            yield server
            browser.close()
    finally:
        server.stop()
    assert not server.kernel_pids(), "a kernel outlived its server"
    assert _tracked_notebooks() == before, "the browser test changed a committed notebook"


@pytest.fixture
def page(lab):
    context = lab.browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route(re.compile(r"^(?!http://127\.0\.0\.1:)"), lambda route: route.abort())  # offline, as on CI: no badge
    page = context.new_page()
    page.set_default_timeout(START_S * 1000)
    yield page
    context.close()
    for session in lab.api("sessions"):   # one kernel at a time on a 2-core machine
        lab.api(f"sessions/{session['id']}", method="DELETE")


def _open_and_run_all(lab: Lab, page, name: str) -> None:
    """Open ``name``, wait for its kernel, Run > Run All Cells, and wait until every cell ran and the kernel is idle."""
    page.goto(f"{lab.url}/lab/workspaces/{name[:2]}/tree/{name}?reset&token={lab.token}")   # only this notebook open
    page.wait_for_function(r"""() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]   // "Python 3 | Idle"
        .some(e => /\| Idle$/.test(e.textContent) && !e.textContent.startsWith('No Kernel'))""")   # kernel connected
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    deadline = time.monotonic() + RUN_S
    state = {}
    while time.monotonic() < deadline:
        state = page.evaluate("""() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
            const errors = [...panel.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')]
                .map(e => e.textContent.slice(0, 1500));
            const status = panel.querySelector('.jp-Notebook-ExecutionIndicator').dataset.status;
            return {prompts, errors, status};
        }""")
        if state["errors"]:
            page.screenshot(path=str(SCREENSHOTS / f"{name[:2]}_error.png"))
            pytest.fail(f"{name}: a cell shows an error in JupyterLab:\n" + "\n---\n".join(state["errors"]))
        if state["status"] == "idle" and all(p.strip("[]: ").isdigit() for p in state["prompts"]):
            return
        time.sleep(1)
    page.screenshot(path=str(SCREENSHOTS / f"{name[:2]}_timeout.png"))
    pytest.fail(f"{name}: the cells did not all run within {RUN_S:.0f} s (FKD_BROWSER_RUN_S); prompts {state}")


def _rendered_images(page) -> list[str]:
    """The ``src`` of every output image that the browser has decoded (naturalWidth > 0), top to bottom."""
    return page.evaluate("""() => [...document.querySelectorAll(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img')]
        .filter(img => img.complete && img.naturalWidth > 0).map(img => img.src)""")


def _figure_cells(name: str) -> int:
    nb = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
    return sum("savefig(" in c.source for c in nb.cells if c.cell_type == "code")


@pytest.fixture(scope="session", autouse=True)
def screenshots_dir():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


