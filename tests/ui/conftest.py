"""A real JupyterLab server and a real Chromium for the browser tests.

This folder must not see pytest-jupyter's autouse event-loop fixtures (they break Playwright's
sync API at teardown), so it gets its own fixtures: ``lab`` starts ``jupyter lab`` as a
subprocess on a free loopback port with a random token, throw-away Jupyter dirs and its own
run store (``KFNB_HOME``), in a root folder holding the example notebooks of :data:`NOTEBOOKS`;
``page`` opens a fresh Chromium page. The browser is Debian's ``chromium`` found on PATH;
``playwright install`` is never needed.

``screenshots`` is the folder the tests save pictures of the panel in (listed at the end of
the session; see ``lab_pages.save_screenshot``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from lab_pages import SAVED_SCREENSHOTS, Lab
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

LAB_START_TIMEOUT_S = 90
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _cell(source: str, *tags: str) -> nbformat.NotebookNode:
    return new_code_cell(source, metadata={"tags": list(tags)} if tags else {})


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def fanout_notebook() -> nbformat.NotebookNode:
    """examples/fanout.ipynb: four quick steps with a fan-out, load -> (squares, roots) ->
    report. Cell 7 has no tags (it continues `report`): the cell tools test makes it a step of
    its own."""
    return nbformat.read(EXAMPLES / "fanout.ipynb", as_version=4)


def magics_notebook() -> nbformat.NotebookNode:
    """examples/magics_pipeline.ipynb: `%%step` cells, then `%kfnb run -p n 4` (its run widget)."""
    return nbformat.read(EXAMPLES / "magics_pipeline.ipynb", as_version=4)


def broken_notebook() -> nbformat.NotebookNode:
    """Step `second` (cell 2) reads a variable no step defines: a problem with a cell index."""
    return new_notebook(
        cells=[
            new_markdown_cell("# Broken\nThe second step reads a name nobody defines."),
            _cell("a = 1", "step:first"),
            _cell("b = a + undefined_thing\nprint(b)", "step:second"),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )


def slow_notebook() -> nbformat.NotebookNode:
    """A step that prints, then sleeps far longer than any test waits: to watch a running step
    (its log streams) and cancel it."""
    return new_notebook(
        cells=[
            _cell('print("warming up", flush=True)\nx = 1', "step:prepare"),
            _cell(
                'import time\nprint("sleeping", flush=True)\ntime.sleep(600)\ny = x', "step:sleep"
            ),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )


def wide_notebook() -> nbformat.NotebookNode:
    """Ten steps shaped like Kale's Titanic example: load, clean, features, then five models in
    parallel (a 5-way fan-out), then results and a report; and a `%%step` cell (`summary`)."""
    models = {
        "naive_bayes": "nb_score = sum(a for a, _ in X) / len(X)",
        "logistic_regression": "lr_score = sum(b for _, b in X) / len(X) / 100",
        "random_forest": "rf_score = max(a for a, _ in X) / 10",
        "svm": "svm_score = min(b for _, b in X) + 0.5",
        "decision_tree": "dt_score = len(X) / 20",
    }
    cells = [
        new_markdown_cell("# Titanic-like\nFive models trained in parallel."),
        _cell("import math", "imports"),
        _cell("data = list(range(40))", "step:load_data"),
        _cell("clean = [x for x in data if x % 7]", "step:clean_data"),
        _cell("X = [(x, x * x) for x in clean]", "step:engineer_features"),
    ]
    cells += [_cell(code, f"step:{name}") for name, code in models.items()]
    cells += [
        _cell(
            "scores = {'nb': nb_score, 'lr': lr_score, 'rf': rf_score, 'svm': svm_score,"
            " 'dt': dt_score}",
            "step:results",
        ),
        _cell("best = max(scores, key=scores.get)\nprint(best, math.pi)", "step:report"),
        _cell("%%step summary --after report --cpu 2\nprint('done')"),
    ]
    return new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )


#: The notebooks in the root of the ``lab`` server (a fresh copy each for tests that edit).
NOTEBOOKS = {
    "fanout.ipynb": fanout_notebook,
    "tagging.ipynb": fanout_notebook,
    "broken.ipynb": broken_notebook,
    "slow.ipynb": slow_notebook,
    "magics_pipeline.ipynb": magics_notebook,
    "wide.ipynb": wide_notebook,
    "wide_tools.ipynb": wide_notebook,
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_settings(settings_dir: Path) -> None:
    """User settings for a quiet, offline Lab: no news or update checks, no toasts."""
    notification = settings_dir / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


def _wait_until_ready(proc: subprocess.Popen[bytes], lab: Lab) -> None:
    deadline = time.monotonic() + LAB_START_TIMEOUT_S
    request = urllib.request.Request(
        f"{lab.url}api/status", headers={"Authorization": f"token {lab.token}"}
    )
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{lab.log_tail()}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last_error = str(error)
        time.sleep(0.2)  # poll interval, not synchronisation: the loop is bounded by `deadline`
    pytest.fail(
        f"jupyter lab did not answer {lab.url}api/status within {LAB_START_TIMEOUT_S}s "
        f"(last: {last_error}):\n{lab.log_tail()}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and anything it started (it leads its own process group)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("lab")
    names = ("root", "config", "data", "runtime", "workspaces", "kfnb-home")
    dirs = {name: base / name for name in names}
    for path in dirs.values():
        path.mkdir()
    _write_settings(base / "settings")
    for name, make in NOTEBOOKS.items():
        nbformat.write(make(), dirs["root"] / name)

    port, token = _free_port(), secrets.token_hex(16)
    lab = Lab(
        url=f"http://127.0.0.1:{port}/",
        token=token,
        log=base / "jupyter-lab.log",
        root=dirs["root"],
        home=dirs["kfnb-home"],
    )
    env = {
        **os.environ,
        "KFNB_HOME": str(dirs["kfnb-home"]),
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={dirs['root']}",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
    ]
    with lab.log.open("wb") as log:
        # cwd is a scratch dir so `-m` cannot import kfnb from the source tree.
        proc = subprocess.Popen(
            command,
            cwd=dirs["root"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(proc, lab)
        yield lab
    finally:
        _stop(proc)


@pytest.fixture
def lab_url(lab: Lab) -> str:
    """The JupyterLab page of the ``lab`` server, logged in by its token, in the default layout
    (``reset`` drops what earlier tests left in the workspace, such as an open side panel)."""
    return f"{lab.url}lab?reset&token={lab.token}"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save pictures of the panel (listed at the end of the test session)."""
    return tmp_path_factory.mktemp("screenshots")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SAVED_SCREENSHOTS:
        terminalreporter.write_line("kfnb panel screenshots:")
        for path in SAVED_SCREENSHOTS:
            terminalreporter.write_line(f"  {path}")


# Module scope, not session: while Playwright's sync driver lives, its event loop counts as
# running, which breaks pytest-jupyter's loop fixtures in tests that run after these.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail(
            "Chromium is not on PATH: install Debian's package (apt-get install -y chromium) "
            "or deselect these tests with -m 'not browser'"
        )
    browser = playwright.chromium.launch(
        executable_path=executable, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught exceptions and unhandled promise rejections of the ``page`` so far."""
    return []


@pytest.fixture
def page(browser: Browser, tmp_path: Path, page_errors: list[str]) -> Iterator[Page]:
    """A fresh page; its console errors and a final screenshot are kept for failure reports."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: (errors.append(str(error)), page_errors.append(str(error))))
    yield page
    screenshot = tmp_path / "page.png"
    page.screenshot(path=str(screenshot))
    print(f"screenshot: {screenshot}")
    if errors:
        print("browser console errors:\n" + "\n".join(errors))
    context.close()
