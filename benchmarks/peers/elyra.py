"""Time Elyra's local runtime (``elyra-pipeline run``) on the notebooks kfnb runs.

    python -m benchmarks.peers.elyra --selftest [--venv DIR] [--keep]

Elyra is installed into its own virtualenv (default ``~/.cache/kfnb-bench/elyra-venv``) so that
its large dependency tree (JupyterLab extensions, kfp, langchain, ...) never meets kfnb's. This
module itself needs only the standard library.

Found by reading Elyra 4.1.1's source (``elyra/pipeline/``, ``elyra/cli/pipeline_app.py``) and
its test ``.pipeline`` files:

- Format: pipeline-flow ``"version": "3.0"`` with ``pipelines[0].app_data.version`` equal to 8
  (``PIPELINE_CURRENT_VERSION``); validation refuses any other value. Version 8 differs from 7
  only in list properties (``env_vars`` ...) being objects, not ``"KEY=value"`` strings; the nodes
  written here leave those lists empty.
- ``runtime_image`` is required on every generic node even by the local runtime (the parser
  raises without it) and is then ignored; a placeholder is written.
- ``filename`` is joined to the pipeline file's folder, and validation then rejects any file
  outside the workspace root, which for the CLI is its working directory: ``run_pipeline``'s
  ``cwd`` must contain every notebook.
- The local runtime runs nodes one at a time in topological order: independent nodes never
  overlap. Each notebook gets a fresh kernel, runs with the notebook's folder as cwd, and is
  executed by ``papermill.execute_notebook(path, path)``: the step notebook is overwritten in
  place with its executed copy.
- Kernel: papermill takes the notebook's ``kernelspec.name`` (``python3``), which jupyter_client
  looks up on the Jupyter data path. ``ensure_venv`` installs a ``python3`` kernelspec into the
  venv with the venv's python as argv[0], and ``run_pipeline`` puts the venv first on ``PATH`` and
  ``JUPYTER_PATH`` and gives Elyra a private ``JUPYTER_DATA_DIR``/``JUPYTER_CONFIG_DIR``, so no
  user-level kernelspec or Elyra runtime configuration can take over.
- Every ``elyra-pipeline run`` pays a fixed start-up cost (importing Elyra, loading the component
  cache, validating) before the first notebook starts; the wall time returned includes it. On a
  2-core machine: ``elyra-pipeline --version`` about 2.0 s, a one-cell ``x = 1`` pipeline about
  3.6 s, then about 1 s more per extra trivial notebook (kernel start-up).
- Elyra exits 1 when a notebook raises; its message names the notebook, cell and exception.
- The ``--selftest`` notebooks record which python ran them and whether the sleeps overlapped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_VENV = Path.home() / ".cache" / "kfnb-bench" / "elyra-venv"
PACKAGES: tuple[str, ...] = ("elyra", "numpy", "pandas", "pyarrow", "ipykernel", "papermill")
PIPELINE_SCHEMA_VERSION = "3.0"
PIPELINE_VERSION = 8
PLACEHOLDER_IMAGE = "unused-by-local-runtime:latest"
_MARKER = "kfnb-elyra-ready.json"
_PIPELINE_FLOW_SCHEMA = (
    "http://api.dataplatform.ibm.com/schemas/common-pipeline/pipeline-flow/"
    "pipeline-flow-v3-schema.json"
)
_PORT_UI = {"cardinality": {"min": 0, "max": -1}}


def _log(message: str) -> None:
    print(f"[elyra] {message}", file=sys.stderr, flush=True)


def _venv_of(exe: Path) -> Path:
    # no resolve(): bin/python is a symlink to the base interpreter
    return Path(os.path.abspath(exe)).parent.parent


def ensure_venv(path: Path = DEFAULT_VENV, *, python: str | None = None) -> Path:
    """Create the Elyra virtualenv at ``path`` if needed; return its ``elyra-pipeline``.

    A marker file listing ``PACKAGES`` makes later calls return at once. ``python`` is the
    interpreter that creates the venv (default: the running one).
    """
    venv = Path(os.path.abspath(path.expanduser()))
    exe = venv / "bin" / "elyra-pipeline"
    py = venv / "bin" / "python"
    marker = venv / _MARKER
    if exe.is_file() and marker.is_file():
        try:
            if json.loads(marker.read_text()).get("packages") == list(PACKAGES):
                return exe
        except (OSError, ValueError):
            pass
    if not py.is_file():
        _log(f"creating virtualenv {venv}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([python or sys.executable, "-m", "venv", str(venv)], check=True)
    _log(f"pip install {' '.join(PACKAGES)} (about 2 minutes on first install)")
    t0 = time.perf_counter()
    # stdout=2: pip's progress goes to our stderr
    subprocess.run([str(py), "-m", "pip", "install", *PACKAGES], check=True, stdout=2)
    _log(f"pip install done in {time.perf_counter() - t0:.0f} s")
    subprocess.run(
        [
            str(py),
            "-m",
            "ipykernel",
            "install",
            "--sys-prefix",
            "--name",
            "python3",
            "--display-name",
            "Python 3 (kfnb-bench elyra venv)",
        ],
        check=True,
        stdout=2,
    )
    if not exe.is_file():
        raise RuntimeError(f"pip install finished but {exe} does not exist")
    version = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m; print(m.version('elyra'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    marker.write_text(json.dumps({"packages": list(PACKAGES), "elyra": version}) + "\n")
    _log(f"elyra {version} ready: {exe}")
    return exe


def elyra_version(elyra_pipeline_exe: Path) -> str:
    """Return the Elyra version recorded by ``ensure_venv`` ("unknown" if absent)."""
    try:
        marker = json.loads((_venv_of(elyra_pipeline_exe) / _MARKER).read_text())
        return str(marker.get("elyra", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def _topological_depths(nodes: Sequence[dict[str, Any]]) -> dict[str, int]:
    by_id = {n["id"]: n for n in nodes}
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(node_id: str) -> int:
        if node_id in depth:
            return depth[node_id]
        if node_id in visiting:
            raise ValueError(f"dependency cycle through node {node_id!r}")
        visiting.add(node_id)
        ups = by_id[node_id].get("after", [])
        depth[node_id] = 1 + max((visit(u) for u in ups), default=-1)
        visiting.discard(node_id)
        return depth[node_id]

    for n in nodes:
        visit(n["id"])
    return depth


def write_pipeline(nodes: list[dict[str, Any]], path: Path) -> Path:
    """Write an Elyra generic ``.pipeline`` file (schema 3.0, version 8) for ``nodes``.

    Each node is ``{"id": str, "notebook": absolute .ipynb path, "after": [upstream ids]}``.
    Notebook paths are stored relative to the pipeline file's folder. Returns ``path``.
    """
    if path.suffix != ".pipeline":
        raise ValueError(f"elyra-pipeline only accepts *.pipeline files, got {path}")
    ids = [n["id"] for n in nodes]
    if not ids:
        raise ValueError("a pipeline needs at least one node")
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate node ids in {ids}")
    for n in nodes:
        unknown = [u for u in n.get("after", []) if u not in ids]
        if unknown:
            raise ValueError(f"node {n['id']!r} runs after unknown node(s) {unknown}")
        if not os.path.isabs(n["notebook"]):
            raise ValueError(f"node {n['id']!r}: notebook path must be absolute: {n['notebook']}")
    depths = _topological_depths(nodes)
    path = Path(os.path.abspath(path))
    base = path.parent
    rows: dict[int, int] = {}
    elyra_nodes = []
    for n in nodes:
        notebook = Path(n["notebook"])
        col = depths[n["id"]]
        row = rows.get(col, 0)
        rows[col] = row + 1
        input_port: dict[str, Any] = {
            "id": "inPort",
            "app_data": {"ui_data": {**_PORT_UI, "label": "Input Port"}},
        }
        if n.get("after"):
            input_port["links"] = [
                {"id": f"{up}-to-{n['id']}", "node_id_ref": up, "port_id_ref": "outPort"}
                for up in n["after"]
            ]
        elyra_nodes.append(
            {
                "id": n["id"],
                "type": "execution_node",
                "op": "execute-notebook-node",
                "app_data": {
                    "label": "",
                    "component_parameters": {
                        "filename": Path(os.path.relpath(notebook, base)).as_posix(),
                        "runtime_image": PLACEHOLDER_IMAGE,
                        "outputs": [],
                        "env_vars": [],
                        "dependencies": [],
                        "include_subdirectories": False,
                    },
                    "ui_data": {
                        "label": n["id"],
                        "x_pos": 100 + 250 * col,
                        "y_pos": 100 + 120 * row,
                        "description": "Run notebook file",
                    },
                },
                "inputs": [input_port],
                "outputs": [
                    {
                        "id": "outPort",
                        "app_data": {"ui_data": {**_PORT_UI, "label": "Output Port"}},
                    }
                ],
            }
        )
    document = {
        "doc_type": "pipeline",
        "version": PIPELINE_SCHEMA_VERSION,
        "json_schema": _PIPELINE_FLOW_SCHEMA,
        "id": "elyra-auto-generated-pipeline",
        "primary_pipeline": "primary",
        "pipelines": [
            {
                "id": "primary",
                "nodes": elyra_nodes,
                "app_data": {
                    "ui_data": {"comments": []},
                    "version": PIPELINE_VERSION,
                    "properties": {"name": path.stem, "runtime": "Generic"},
                },
                "runtime_ref": "",
            }
        ],
        "schemas": [],
    }
    base.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def _elyra_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["JUPYTER_PATH"] = str(venv / "share" / "jupyter")
    env["JUPYTER_PREFER_ENV_PATH"] = "1"
    env["JUPYTER_DATA_DIR"] = str(venv / "kfnb-jupyter-data")
    env["JUPYTER_CONFIG_DIR"] = str(venv / "kfnb-jupyter-config")
    return env


def _check_inside(pipeline_file: Path, cwd: Path) -> None:
    doc = json.loads(pipeline_file.read_text())
    root = os.path.abspath(cwd)
    for pipeline in doc.get("pipelines", []):
        for node in pipeline.get("nodes", []):
            name = node.get("app_data", {}).get("component_parameters", {}).get("filename")
            if not name:
                continue
            full = os.path.normpath(os.path.join(pipeline_file.parent, name))
            if os.path.commonpath([full, root]) != root:
                raise ValueError(f"{full} is outside cwd {root}; Elyra would reject it")


def _tail(text: str | None, lines: int = 40) -> str:
    return "\n".join((text or "").splitlines()[-lines:])


def run_pipeline(elyra_pipeline_exe: Path, pipeline_file: Path, cwd: Path, timeout: float) -> float:
    """Run ``elyra-pipeline run pipeline_file`` in ``cwd``; return its wall time in seconds.

    ``cwd`` is Elyra's workspace root and must contain every notebook. Raises RuntimeError with
    the tail of Elyra's output if it fails or runs past ``timeout`` seconds.
    """
    exe = Path(os.path.abspath(elyra_pipeline_exe))
    pipeline_file = Path(os.path.abspath(pipeline_file))
    _check_inside(pipeline_file, cwd)
    cmd = [str(exe), "run", str(pipeline_file)]
    t0 = time.perf_counter()
    # own session, so a timeout also kills the kernels Elyra started
    with subprocess.Popen(
        cmd,
        cwd=cwd,
        env=_elyra_env(_venv_of(exe)),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            raise RuntimeError(
                f"elyra-pipeline run {pipeline_file.name} timed out after {timeout:g} s:\n"
                f"{_tail(output)}"
            ) from None
    elapsed = time.perf_counter() - t0
    # the banner guards against a zero exit that skipped the run
    if proc.returncode != 0 or "Local Run Complete" not in output:
        raise RuntimeError(
            f"elyra-pipeline run {pipeline_file.name} failed (exit {proc.returncode}):\n"
            f"{_tail(output)}"
        )
    return elapsed


# ---------------------------------------------------------------- self-test


def _write_notebook(path: Path, source: str) -> Path:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "step",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1) + "\n")
    return path


_CHAIN_STEP = """\
import pathlib, sys
k = {k}
order = pathlib.Path("order.txt")
seen = order.read_text().split() if order.exists() else []
assert seen == [str(i) for i in range(1, k)], seen
order.write_text(" ".join([*seen, str(k)]))
pathlib.Path(f"kernel_{{k}}.txt").write_text(sys.executable)
"""

_SLEEP_STEP = """\
import json, pathlib, time
t0 = time.time()
time.sleep(1)
pathlib.Path("sleep_{k}.json").write_text(json.dumps([t0, time.time()]))
"""

_JOIN_STEP = """\
import json, pathlib
spans = sorted(json.loads(pathlib.Path(f"sleep_{k}.json").read_text()) for k in (1, 2, 3))
overlap = any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
pathlib.Path("join.json").write_text(json.dumps({"spans": spans, "overlap": overlap}))
"""


def selftest(venv: Path = DEFAULT_VENV, keep: bool = False, timeout: float = 600.0) -> None:
    """Run a 3-notebook chain and a 3-way fan-out + join through Elyra and check the results."""
    exe = ensure_venv(venv)
    print(f"elyra {elyra_version(exe)} at {exe}")
    work = Path(tempfile.mkdtemp(prefix="kfnb-elyra-selftest-"))
    try:
        # pipelines/ and notebooks/ are siblings so filenames become "../notebooks/..."
        chain_dir = work / "notebooks" / "chain"
        chain = [
            {
                "id": f"step{k}",
                "after": [f"step{k - 1}"] if k > 1 else [],
                "notebook": str(
                    _write_notebook(chain_dir / f"step{k}.ipynb", _CHAIN_STEP.format(k=k))
                ),
            }
            for k in (1, 2, 3)
        ]
        fan_dir = work / "notebooks" / "fanout"
        fanout = [
            {
                "id": f"sleep{k}",
                "after": [],
                "notebook": str(
                    _write_notebook(fan_dir / f"sleep{k}.ipynb", _SLEEP_STEP.format(k=k))
                ),
            }
            for k in (1, 2, 3)
        ]
        fanout.append(
            {
                "id": "join",
                "after": ["sleep1", "sleep2", "sleep3"],
                "notebook": str(_write_notebook(fan_dir / "join.ipynb", _JOIN_STEP)),
            }
        )
        chain_file = write_pipeline(chain, work / "pipelines" / "chain.pipeline")
        fan_file = write_pipeline(fanout, work / "pipelines" / "fanout.pipeline")

        t_chain = run_pipeline(exe, chain_file, work, timeout)
        order = (chain_dir / "order.txt").read_text().split()
        assert order == ["1", "2", "3"], order
        kernels = {(chain_dir / f"kernel_{k}.txt").read_text() for k in (1, 2, 3)}
        venv_abs = str(_venv_of(exe))
        assert all(k.startswith(venv_abs + os.sep) for k in kernels), (kernels, venv_abs)
        print(
            f"chain  (3 trivial notebooks):      {t_chain:6.2f} s  order={' '.join(order)}"
            f"  kernel={kernels.pop()}"
        )

        t_fan = run_pipeline(exe, fan_file, work, timeout)
        joined = json.loads((fan_dir / "join.json").read_text())
        spans = joined["spans"]
        print(
            f"fanout (3 x sleep(1) + join):      {t_fan:6.2f} s  sleeps overlapped="
            f"{joined['overlap']}  first start to last end={spans[-1][1] - spans[0][0]:.2f} s"
        )
        print("selftest passed")
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``--selftest`` checks the whole path; ``--install`` only builds the venv."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers.elyra",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--selftest", action="store_true", help="run the self-test pipelines")
    parser.add_argument("--install", action="store_true", help="only create the Elyra venv")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="Elyra virtualenv")
    parser.add_argument("--keep", action="store_true", help="keep the self-test's temp folder")
    args = parser.parse_args(argv)
    if args.selftest:
        selftest(args.venv, keep=args.keep)
    elif args.install:
        print(ensure_venv(args.venv))
    else:
        parser.error("give --selftest or --install")


if __name__ == "__main__":
    main()
