"""The kfnb side panel in a real JupyterLab and Chromium: bundle size and time to a drawn DAG.

    python benchmarks/panel_load.py [--venv PATH] [--repeat 5] [--warmup 1] [--json FILE]
                                    [--screenshot FILE] [--timeout 60]

``--venv`` is a virtual environment in which kfnb and its labextension are installed (default:
the repository's ``.venv``); nothing here imports kfnb, so it measures any kfnb version whose
panel keeps the selectors below. Run it with an interpreter that has ``playwright`` and
``nbformat``; if this one lacks them, the script runs itself again with the venv's Python.
The browser is Debian's ``chromium`` on PATH (``playwright install`` is never needed).

What it measures:

- bundle: total bytes of the installed labextension's static JS
  (``<venv>/share/jupyter/labextensions/kfnb/static/*.js``), the same gzipped (level 6, each
  file on its own, as a server compressing responses would send it), and the largest chunk;
- a ``jupyter lab`` from the venv on 127.0.0.1 (free port, random token, throw-away root,
  Jupyter dirs and ``KFNB_HOME``, news and update checks off, as ``tests/ui/conftest.py`` does)
  with ``panel_bench.ipynb`` in its root: 10 steps with a 5-way fan-out
  (load -> clean -> features -> m1..m5 -> compare -> report, plus an ``imports`` cell);
- ``--warmup`` uncounted then ``--repeat`` counted loads, each in a fresh browser context
  (empty cache) at 1280x800 and a fresh default workspace: open ``lab/tree/panel_bench.ipynb``,
  wait until the app is restored and the notebook is the current widget, click the panel's
  side-bar tab, then wait until the 10 ``.kfnb-Node`` of the pipeline's DAG are in
  ``#kfnb-panel svg`` and the panel is shown. Times are taken inside the page
  (``performance.now()``): from the tab's ``pointerdown`` to the first DOM mutation after which
  the condition holds (a MutationObserver), and from navigation start to that same moment;
- at that moment: the panel's width (its default: nothing resized it), and how many of the 10
  nodes lie wholly inside the panel's visible box (the panel's box, cut by the window and by
  every clipping ancestor of the node: the svg, the DAG's scroll box, the side area). The JSON
  also has, per load, the nodes not wholly visible, the svg's and the nodes' extent, and how
  many nodes were already in the (hidden) panel when the tab was clicked.

Prints a table (metric, median, min, max); ``--json`` writes the figures and every load's raw
numbers; ``--screenshot`` saves the page after the last load. The server (and its kernels) is
always stopped, also on Ctrl-C or a timeout.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gzip
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "panel_bench.ipynb"
N_NODES = 10
PANEL = "#kfnb-panel"
PANEL_TAB = '.jp-SideBar [data-id="kfnb-panel"]'
NODES = f"{PANEL} svg .kfnb-Node"
VIEWPORT = {"width": 1280, "height": 800}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_REEXEC_FLAG = "KFNB_PANEL_BENCH_REEXEC"


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


# -- interpreter --------------------------------------------------------------------------------
def _ensure_deps(venv: Path) -> None:
    """Run again with the venv's Python when this interpreter lacks playwright or nbformat."""
    try:
        import nbformat  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        python = venv / "bin" / "python"
        if os.environ.get(_REEXEC_FLAG) or not python.exists():
            raise SystemExit(
                f"panel_load.py needs playwright and nbformat ({error}); run it with a Python "
                f"that has them (e.g. {python} after `pip install '.[test]'`)"
            ) from None
        print(f"({error}: running again with {python})", file=sys.stderr, flush=True)
        os.environ[_REEXEC_FLAG] = "1"
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


# -- bundle -------------------------------------------------------------------------------------
def bundle_size(venv: Path) -> dict[str, Any]:
    ext = venv / "share" / "jupyter" / "labextensions" / "kfnb"
    static = ext / "static"
    files = sorted(static.glob("*.js"))
    if not files:
        raise BenchError(
            f"no labextension JS under {static}: is kfnb (with its labextension) installed "
            f"in {venv}?"
        )
    sizes = {f.name: f.stat().st_size for f in files}
    gz = {f.name: len(gzip.compress(f.read_bytes(), compresslevel=6)) for f in files}
    largest = max(sizes, key=lambda name: sizes[name])
    version = None
    with contextlib.suppress(OSError, ValueError):
        version = json.loads((ext / "package.json").read_text()).get("version")
    return {
        "labextension": str(ext),
        "version": version,
        "files": sizes,
        "total_bytes": sum(sizes.values()),
        "total_gzip_bytes": sum(gz.values()),
        "largest_chunk": largest,
        "largest_chunk_bytes": sizes[largest],
    }


# -- notebook -----------------------------------------------------------------------------------
def write_notebook(path: Path) -> None:
    """10 steps, 5-way fan-out: load -> clean -> features -> m1..m5 -> compare -> report."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    def cell(source: str, tag: str | None = None) -> Any:
        return new_code_cell(source, metadata={"tags": [tag]} if tag else {})

    models = [
        cell(
            f"w{i} = sum(row[0] * {i} + row[1] for row in X)\nresult{i} = {{'name': 'm{i}', "
            f"'score': w{i} / len(X)}}",
            f"step:m{i}",
        )
        for i in range(1, 6)
    ]
    cells = [
        new_markdown_cell("# Panel benchmark\nTen steps with a five-way fan-out."),
        cell("import math\nimport statistics", "imports"),
        cell("df = [{'a': i, 'b': i * i} for i in range(100)]", "step:load"),
        cell("clean = [row for row in df if row['a'] % 7 != 0]", "step:clean"),
        cell(
            "X = [(row['a'] / 100, math.sqrt(row['b'])) for row in clean]\nprint(len(X))",
            "step:features",
        ),
        *models,
        cell(
            "results = [result1, result2, result3, result4, result5]\n"
            "best = max(results, key=lambda r: r['score'])\n"
            "mean_score = statistics.mean(r['score'] for r in results)",
            "step:compare",
        ),
        cell(
            "report = f\"best: {best['name']} ({best['score']:.3f}), mean {mean_score:.3f}\"\n"
            "print(report)",
            "step:report",
        ),
    ]
    nb = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.write(nb, path)


# -- server -------------------------------------------------------------------------------------
#: Servers started and not yet stopped: SIGTERM and exit stop them even if an exception is lost.
_SERVERS: list[LabServer] = []


def _die_with_parent() -> None:
    """In the server's process, before exec (Linux): SIGTERM when this script dies, even by
    SIGKILL, so no server outlives it."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop_all() -> None:
    for server in list(_SERVERS):
        server.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LabServer:
    """``jupyter lab`` from the venv, in throw-away folders under ``base``; a context manager
    that always stops it and everything it started (it leads its own process group)."""

    def __init__(self, venv: Path, base: Path, start_timeout_s: float) -> None:
        self.venv, self.base, self.start_timeout_s = venv, base, start_timeout_s
        self.dirs = {
            n: base / n for n in ("root", "config", "data", "runtime", "workspaces", "kfnb-home")
        }
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = base / "jupyter-lab.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LabServer:
        for path in self.dirs.values():
            path.mkdir(parents=True)
        notification = self.base / "settings" / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True)
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        python = self.venv / "bin" / "python"
        if not python.exists():
            raise BenchError(f"{python} does not exist: --venv must be a virtual environment")
        env = {
            **os.environ,
            "KFNB_HOME": str(self.dirs["kfnb-home"]),
            "JUPYTER_CONFIG_DIR": str(self.dirs["config"]),
            "JUPYTER_DATA_DIR": str(self.dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(self.dirs["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(self.base / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.dirs["workspaces"]),
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(self.venv),
        }
        env.pop("PYTHONPATH", None)
        env.pop(_REEXEC_FLAG, None)
        command = [
            str(python), "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={self.dirs['root']}",
            f"--IdentityProvider.token={self.token}", "--LabApp.expose_app_in_browser=True",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            # cwd is the root folder, so `-m` cannot import kfnb from a source tree
            self.proc = subprocess.Popen(
                command,
                cwd=self.dirs["root"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        _SERVERS.append(self)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        request = urllib.request.Request(
            f"{self.url}api/status", headers={"Authorization": f"token {self.token}"}
        )
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                last = str(error)
            time.sleep(0.2)  # poll interval, bounded by the deadline
        raise BenchError(
            f"jupyter lab did not answer {self.url}api/status within {self.start_timeout_s:.0f}s"
            f" (last: {last}):\n{self.log_tail()}"
        )

    def forget_workspaces(self) -> None:
        """Drop saved workspaces, so the next page starts in the default layout (panel shut)."""
        for path in self.dirs["workspaces"].iterdir():
            if path.is_file():
                path.unlink()

    def stop(self) -> None:
        if self in _SERVERS:
            _SERVERS.remove(self)
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        # kernels the server started live in its process group: make sure none is left
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _group_cpu_s(pgid: int) -> float | None:
    """CPU seconds used so far by the live processes of process group ``pgid`` (Linux only)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:  # fields after "comm)": state ppid pgrp ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def settle(server: LabServer, timeout_s: float = 30, quiet: float = 0.15) -> float:
    """Wait (up to ``timeout_s``) until the server and its kernels use under ``quiet`` of one
    CPU over a 1 s window; return the seconds waited."""
    assert server.proc is not None
    start = time.monotonic()
    previous = _group_cpu_s(server.proc.pid)
    if previous is None:
        return 0.0
    while time.monotonic() - start < timeout_s:
        time.sleep(1.0)
        now = _group_cpu_s(server.proc.pid) or 0.0
        if now - previous < quiet:
            break
        previous = now
    return time.monotonic() - start


# -- browser ------------------------------------------------------------------------------------
# Installed before the click: stamps the tab's pointerdown and the first DOM mutation after
# which all nodes are in the panel's svg and the panel is shown (checked once at once too).
_WATCH_JS = """([nodes, panelSel, tabSel, expected]) => {
  const w = { down: null, done: null, count: 0, before: null };
  window.__kfnbBench = w;
  const ready = () => {
    const panel = document.querySelector(panelSel);
    if (!panel || panel.offsetParent === null && getComputedStyle(panel).position !== 'fixed')
      return false;
    const r = panel.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return false;
    w.count = document.querySelectorAll(nodes).length;
    return w.count >= expected;
  };
  const check = () => {
    if (w.done === null && w.down !== null && ready()) {
      w.done = performance.now();
      obs.disconnect();
    }
  };
  const obs = new MutationObserver(check);
  obs.observe(document.body, {
    childList: true, subtree: true, attributes: true, attributeFilter: ['class', 'style', 'hidden']
  });
  document.addEventListener('pointerdown', ev => {
    const tab = document.querySelector(tabSel);
    if (w.down === null && tab && tab.contains(ev.target)) {
      w.down = performance.now();
      w.before = document.querySelectorAll(nodes).length;
      queueMicrotask(check);
    }
  }, true);
}"""

# Where the nodes lie against what of the panel can be seen.
_GEOMETRY_JS = """([nodes, panelSel]) => {
  const panel = document.querySelector(panelSel);
  const box = r => ({ left: r.left, top: r.top, right: r.right, bottom: r.bottom });
  const cut = (a, b) => ({
    left: Math.max(a.left, b.left), top: Math.max(a.top, b.top),
    right: Math.min(a.right, b.right), bottom: Math.min(a.bottom, b.bottom)
  });
  const viewport = { left: 0, top: 0, right: window.innerWidth, bottom: window.innerHeight };
  const panelBox = cut(box(panel.getBoundingClientRect()), viewport);
  const out = [];
  let union = null;
  for (const node of document.querySelectorAll(nodes)) {
    const r = box(node.getBoundingClientRect());
    union = union ? { left: Math.min(union.left, r.left), top: Math.min(union.top, r.top),
      right: Math.max(union.right, r.right), bottom: Math.max(union.bottom, r.bottom) } : r;
    let visible = panelBox;
    for (let el = node.parentElement; el && el !== document.body; el = el.parentElement) {
      const s = getComputedStyle(el);
      const clips = s.overflowX !== 'visible' || s.overflowY !== 'visible'
        || el.tagName.toLowerCase() === 'svg';
      if (clips) visible = cut(visible, box(el.getBoundingClientRect()));
    }
    const eps = 0.5;
    const inside = r.left >= visible.left - eps && r.right <= visible.right + eps
      && r.top >= visible.top - eps && r.bottom <= visible.bottom + eps;
    const name = node.dataset.step || node.getAttribute('data-step')
      || (node.querySelector('.kfnb-Node-name') || {}).textContent || '';
    out.push({ name, inside, box: r });
  }
  const pr = panel.getBoundingClientRect();
  const svg = panel.querySelector('svg.kfnb-Dag-svg') || panel.querySelector('svg');
  const sr = svg ? svg.getBoundingClientRect() : null;
  return {
    panel_width: pr.width, panel_height: pr.height,
    svg_width: sr ? sr.width : null, svg_height: sr ? sr.height : null,
    nodes_extent: union ? { width: union.right - union.left, height: union.bottom - union.top }
      : null,
    nodes: out
  };
}"""


def _wait(page: Any, what: str, js: str, arg: Any, timeout_ms: float) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(js, arg=arg, timeout=timeout_ms)
    except PlaywrightTimeout:
        raise BenchError(f"timed out after {timeout_ms / 1000:.0f}s waiting for {what}") from None


def load_once(browser: Any, server: LabServer, timeout_s: float, shot: Path | None) -> dict:
    """One load in a fresh context: open the notebook, click the tab, wait for the DAG."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    timeout_ms = timeout_s * 1000
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(timeout_ms)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(f"{server.url}lab/tree/{NOTEBOOK}?token={server.token}")
        _wait(page, "window.jupyterapp", "() => window.jupyterapp !== undefined", None, timeout_ms)
        page.evaluate("() => window.jupyterapp.restored")
        _wait(
            page,
            f"{NOTEBOOK} to be the current widget with its model loaded",
            "p => { const w = window.jupyterapp.shell.currentWidget;"
            " return !!w && w.context?.path === p && w.context.isReady; }",
            NOTEBOOK,
            timeout_ms,
        )
        tab = page.locator(PANEL_TAB)
        try:
            tab.wait_for(state="visible", timeout=timeout_ms)
        except PlaywrightTimeout:
            raise BenchError(
                f"the kfnb side-bar tab ({PANEL_TAB}) did not show within {timeout_s:.0f}s: "
                f"is the labextension installed and enabled? page errors: {errors[-5:]}"
            ) from None
        if "lm-mod-current" in (tab.get_attribute("class") or ""):
            raise BenchError("the kfnb panel was already open before the click (stale workspace?)")
        page.evaluate(_WATCH_JS, [NODES, PANEL, PANEL_TAB, N_NODES])
        tab.click()
        try:
            page.wait_for_function(
                "() => window.__kfnbBench.done !== null", timeout=timeout_ms, polling=50
            )
        except PlaywrightTimeout:
            state = page.evaluate("() => window.__kfnbBench")
            raise BenchError(
                f"timed out after {timeout_s:.0f}s waiting for {N_NODES} nodes in "
                f"'{PANEL} svg' (saw {state.get('count')}, pointerdown seen: "
                f"{state.get('down') is not None}); page errors: {errors[-5:]}"
            ) from None
        stamps = page.evaluate("() => window.__kfnbBench")
        geometry = page.evaluate(_GEOMETRY_JS, [NODES, PANEL])
        if shot is not None:
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.wait_for_timeout(300)  # let the panel's other sections settle for the picture
            page.screenshot(path=str(shot), animations="disabled")
        visible = sum(1 for node in geometry["nodes"] if node["inside"])
        return {
            "click_to_dag_ms": stamps["done"] - stamps["down"],
            "nav_to_dag_ms": stamps["done"],
            "nodes_before_click": stamps["before"],
            "nodes_found": len(geometry["nodes"]),
            "nodes_visible": visible,
            "hidden_nodes": [n["name"] for n in geometry["nodes"] if not n["inside"]],
            "panel_width_px": geometry["panel_width"],
            "panel_height_px": geometry["panel_height"],
            "svg_width_px": geometry["svg_width"],
            "svg_height_px": geometry["svg_height"],
            "nodes_extent_px": geometry["nodes_extent"],
            "page_errors": errors,
        }
    finally:
        context.close()


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM: stop the server at once, then unwind like Ctrl-C (closing the browser)."""
    _stop_all()
    raise KeyboardInterrupt


# -- report -------------------------------------------------------------------------------------
def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def table(rows: list[tuple[str, dict[str, float], str]]) -> str:
    lines = [f"{'metric':<34} {'median':>10} {'min':>10} {'max':>10}", "-" * 67]
    for name, s, fmt in rows:
        lines.append(
            f"{name:<34} {format(s['median'], fmt):>10} {format(s['min'], fmt):>10} "
            f"{format(s['max'], fmt):>10}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--venv",
        type=Path,
        default=ROOT / ".venv",
        help="venv with kfnb and its labextension installed (default: %(default)s)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="counted loads (default: 5)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="uncounted loads first (server caches, kernel start; default: 1)",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--screenshot", type=Path, help="save the page after the last load")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60,
        help="seconds for each wait: server start, page, DAG (default: 60)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the server's temp folder")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    venv = args.venv.absolute()  # not resolve(): a venv's bin/python is a symlink
    _ensure_deps(venv)
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise BenchError("Chromium is not on PATH (Debian: apt-get install -y chromium)")

    bundle = bundle_size(venv)
    print(f"venv: {venv}  (kfnb labextension {bundle['version']})", flush=True)
    print(
        f"bundle: {bundle['total_bytes']:,} B JS in {len(bundle['files'])} files "
        f"({bundle['total_gzip_bytes']:,} B gzipped); largest chunk {bundle['largest_chunk']} "
        f"{bundle['largest_chunk_bytes']:,} B",
        flush=True,
    )

    signal.signal(signal.SIGTERM, _interrupt)
    atexit.register(_stop_all)
    base = Path(tempfile.mkdtemp(prefix="kfnb-panel-bench-"))
    loads: list[dict[str, Any]] = []
    failed = False
    try:
        with LabServer(venv, base, args.timeout) as server, sync_playwright() as pw:
            write_notebook(server.dirs["root"] / NOTEBOOK)
            waited = settle(server)
            print(f"jupyter lab at {server.url} (settled {waited:.1f}s)", flush=True)
            browser = pw.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                total = args.warmup + args.repeat
                for i in range(total):
                    server.forget_workspaces()
                    shot = args.screenshot if i == total - 1 else None
                    result = load_once(browser, server, args.timeout, shot)
                    result["warmup"] = i < args.warmup
                    loads.append(result)
                    print(
                        f"  load {i + 1}/{total}{' (warm-up)' if result['warmup'] else ''}: "
                        f"click->DAG {result['click_to_dag_ms']:.0f} ms, navigation->DAG "
                        f"{result['nav_to_dag_ms']:.0f} ms, {result['nodes_visible']}/"
                        f"{result['nodes_found']} nodes inside the "
                        f"{result['panel_width_px']:.0f}px panel",
                        flush=True,
                    )
            finally:
                browser.close()
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        print(f"(server log kept: {base / 'jupyter-lab.log'})", file=sys.stderr)
        failed = True
        return 1
    finally:
        if not failed and not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    counted = [r for r in loads if not r["warmup"]]
    figures = {
        "click_to_dag_ms": summarize([r["click_to_dag_ms"] for r in counted]),
        "nav_to_dag_ms": summarize([r["nav_to_dag_ms"] for r in counted]),
        "nodes_visible": summarize([r["nodes_visible"] for r in counted]),
        "panel_width_px": summarize([r["panel_width_px"] for r in counted]),
    }
    kib = {"median": bundle["total_bytes"] / 1024}
    kib.update(min=kib["median"], max=kib["median"])
    big = {"median": bundle["largest_chunk_bytes"] / 1024}
    big.update(min=big["median"], max=big["median"])
    gz = {"median": bundle["total_gzip_bytes"] / 1024}
    gz.update(min=gz["median"], max=gz["median"])
    text = table(
        [
            ("bundle JS total (KiB)", kib, ".1f"),
            ("bundle JS total gzip (KiB)", gz, ".1f"),
            (f"largest chunk (KiB) {bundle['largest_chunk'][:12]}", big, ".1f"),
            ("tab click -> 10 nodes (ms)", figures["click_to_dag_ms"], ".0f"),
            ("navigation -> 10 nodes (ms)", figures["nav_to_dag_ms"], ".0f"),
            (f"nodes inside visible panel (/{N_NODES})", figures["nodes_visible"], ".0f"),
            ("panel default width (px)", figures["panel_width_px"], ".0f"),
        ]
    )
    size = f"{VIEWPORT['width']}x{VIEWPORT['height']}"
    load_avg = os.getloadavg()[0]
    runs = f"{len(counted)} loads (+{args.warmup} warm-up)"
    print(f"\n{runs}, Chromium {size}, load avg {load_avg:.2f}\n")
    print(text)
    hidden = counted[-1]["hidden_nodes"]
    if hidden:
        print(f"\nnodes not wholly inside the panel (last load): {', '.join(hidden)}")
    errors = sorted({e for r in loads for e in r["page_errors"]})
    if errors:
        print("\npage errors:\n  " + "\n  ".join(errors[:10]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "venv": str(venv),
                    "bundle": bundle,
                    "repeat": args.repeat,
                    "warmup": args.warmup,
                    "viewport": VIEWPORT,
                    "loadavg": os.getloadavg(),
                    "chromium": executable,
                    "summary": figures,
                    "loads": loads,
                },
                indent=2,
            )
        )
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit("interrupted")
