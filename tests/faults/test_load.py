"""Load: many runs on one store at once, from the CLI and the REST API together.

Six ``kfnb run`` processes and ten ``POST /kfnb/api/runs`` against a real Jupyter server (a
subprocess on loopback with a token, the kfnb extension loaded) write the same ``KFNB_HOME`` at
the same time: every run must succeed with its own values, none may meet "database is locked",
the counts must match, and no kernel (nor the server) may be left once they are done. Prints
one summary line (run with ``-s``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from procs import processes_of

from kfnb.tracking import Store

KFNB = str(Path(sys.executable).with_name("kfnb"))
JUPYTER_SERVER = str(Path(sys.executable).with_name("jupyter-server"))
TRACEBACK = "Traceback (most recent call last)"
LOCKED = "database is locked"
CLI_RUNS = 6
REST_RUNS = 10
DEADLINE_S = 150  # for all runs together; they take ~30-60 s on two cores
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "PRUNED")


def write_notebook(path: Path) -> None:
    nb = new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Py"}}
    )
    for tag, source in (
        ("pipeline-parameters", "n = 0"),
        ("step:a", "x = n * 2"),
        ("step:b", "y = x + 1"),
        ("pipeline-metrics", "print(y)"),
    ):
        nb.cells.append(new_code_cell(source, metadata={"tags": [tag]}))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``jupyter server`` on loopback with the kfnb extension, as a subprocess."""

    def __init__(self, root: Path, home: Path, mark: str, log: Path) -> None:
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.base = f"http://127.0.0.1:{self.port}"
        config = root.parent / "jupyter_server_config.json"
        config.write_text(
            json.dumps(
                {
                    "ServerApp": {
                        "jpserver_extensions": {
                            "kfnb": True,
                            "jupyterlab": False,
                            "jupyter_lsp": False,
                            "jupyter_server_terminals": False,
                            "notebook_shim": False,
                        }
                    },
                    "KfnbServerSettings": {
                        "home": str(home),
                        "pool_size": 0,
                        "refresh_interval": 0,
                    },
                }
            )
        )
        env = {**os.environ, "KFNB_TEST_MARK": mark, "KFNB_HOME": str(home)}
        env["JUPYTER_CONFIG_DIR"] = str(root.parent / "jupyter-config")  # not the user's
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                JUPYTER_SERVER,
                f"--config={config}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.open_browser=False",
                "--ServerApp.allow_root=True",  # CI runs as root
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def call(self, method: str, route: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base}/kfnb/api/{route}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the Jupyter server exited at start"
            try:
                if self.call("GET", "version")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("the Jupyter server did not answer in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # twice: jupyter server asks to confirm once
            time.sleep(0.2)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()


def why_it_failed(store: Store, rid: str, server_log: Path) -> str:
    """What a run that did not succeed recorded (its error, steps and events) and the server's
    log tail: all a flaky failure under load leaves to read."""
    run = store.get_run(rid)
    steps = [(s.name, s.status, s.error) for s in run.steps]
    events = [(e.kind, e.data) for e in store.events(rid)]
    tail = server_log.read_text()[-3000:]
    return f"run {rid}: {run.status}, error {run.error}\nsteps {steps}\nevents {events}\n{tail}"


@pytest.fixture
def server(tmp_path: Path, kfnb_home: Path) -> Iterator[Server]:
    mark = f"faults-load-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "root"
    root.mkdir()
    started = Server(root, kfnb_home, mark, tmp_path / "server.log")
    started.mark = mark  # type: ignore[attr-defined]
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def test_cli_and_rest_runs_on_one_store_at_once(
    server: Server, tmp_path: Path, kfnb_home: Path
) -> None:
    mark: str = server.mark  # type: ignore[attr-defined]
    root = tmp_path / "root"
    write_notebook(root / "load.ipynb")
    Store(kfnb_home).close()  # the store exists before the crowd arrives (as it usually does)
    started = time.monotonic()
    env = {**os.environ, "KFNB_TEST_MARK": mark, "KFNB_HOME": str(kfnb_home)}
    clis = [
        subprocess.Popen(
            [KFNB, "run", str(root / "load.ipynb"), "-p", "n", str(i), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        for i in range(CLI_RUNS)
    ]
    posted: list[tuple[int, int, Any]] = []

    def post(n: int) -> None:
        status, body = server.call("POST", "runs", {"path": "load.ipynb", "params": {"n": n}})
        posted.append((n, status, body))

    # and someone watches: the run list read over and over while the runs write
    reads: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            reads.append(server.call("GET", "runs?limit=50")[0])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=post, args=(CLI_RUNS + i,)) for i in range(REST_RUNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(status == 201 for _, status, _ in posted), posted
    assert len(posted) == REST_RUNS

    outputs = []
    for proc in clis:
        out, err = proc.communicate(timeout=DEADLINE_S)
        outputs.append((proc.returncode, out, err))
    for code, _, err in outputs:
        assert TRACEBACK not in err and LOCKED not in err, err
        assert code == 0, err

    rest_ids = {body["id"]: n for n, _, body in posted}
    deadline = started + DEADLINE_S
    ended: dict[str, Any] = {}
    while len(ended) < len(rest_ids) and time.monotonic() < deadline:
        for rid in rest_ids:
            if rid not in ended:
                status, body = server.call("GET", f"runs/{rid}")
                assert status == 200, body
                if body["status"] in TERMINAL:
                    ended[rid] = body
        time.sleep(0.25)
    took = time.monotonic() - started
    done.set()
    watcher.join(timeout=60)
    assert len(ended) == len(rest_ids), "some REST runs did not end in time"
    assert reads and set(reads) == {200}, reads

    # every run, however started, is in the one store, succeeded, with its own values
    store = Store(kfnb_home)
    runs = store.list_runs(limit=None)
    cli_ids = {json.loads(out)["id"]: i for i, (_, out, _) in enumerate(outputs)}
    expected = {**cli_ids, **rest_ids}
    assert len(runs) == CLI_RUNS + REST_RUNS == len(expected)
    assert {r.id for r in runs} == set(expected)
    for run in runs:
        assert run.status == "SUCCEEDED", why_it_failed(store, run.id, tmp_path / "server.log")
        assert [s.status for s in run.steps] == ["SUCCEEDED", "SUCCEEDED"], run.to_dict()
        n = expected[run.id]
        assert run.params == {"n": n} and run.metrics == {"y": 2 * n + 1}, run.to_dict()
    errors = " ".join(str(e.data) for r in runs for e in store.events(r.id))
    assert LOCKED not in errors
    listed = server.call("GET", "runs?limit=100")[1]
    assert listed["total"] == CLI_RUNS + REST_RUNS
    store.close()

    server.stop()
    log = (tmp_path / "server.log").read_text()
    assert LOCKED not in log and TRACEBACK not in log, log[-3000:]
    deadline = time.monotonic() + 20
    while (left := processes_of(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], f"processes left: {left}"
    succeeded = sum(r.status == "SUCCEEDED" for r in runs)
    print(
        f"\n[faults] load ({CLI_RUNS} CLI + {REST_RUNS} REST runs on one store): "
        f"faults injected 0, runs {len(runs)}, terminal {len(runs)}/{len(expected)}, "
        f"succeeded {succeeded}, lost {len(expected) - len(runs)}, leaked {len(left)}, "
        f"'database is locked' 0, list reads meanwhile {len(reads)} (all 200), took {took:.1f} s"
    )
