"""The binder demo, checked without Docker (there is no engine here).

1. ``repo2docker --no-build`` renders the Dockerfile mybinder would build from a copy of this
   checkout: the ``binder/`` folder wins, ``binder/environment.yml`` makes the conda environment
   and ``binder/postBuild`` runs in the copied repository.
2. ``binder/postBuild`` runs for real in a fresh venv (a stand-in for the image's conda
   environment): kfnb with the demo's extras, both extensions enabled, the default JupyterLab
   workspace opening ``examples/fanout.ipynb`` beside the kfnb panel.
3. Every notebook in ``examples/`` runs through ``papermill --engine kfnb`` in that venv, started
   through ``binder/start`` as the image starts its server.

Speed: the copy carries the JupyterLab bundle that ``scripts/test`` built for the test venv
(``kfnb/labextension``), so the wheel build in postBuild skips the JS step (hatch-jupyter-builder's
``skip-if-exists``) and needs no Node.js; the rest installs from the package index as in the image.
PyTorch, which the image gets from conda-forge (``pytorch-cpu`` in environment.yml), is installed
into the venv first, at the test venv's version.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (REPO / "examples").glob("*.ipynb"))
DEMO = "examples/fanout.ipynb"
BUNDLE = "kfnb/labextension"
# a fresh venv with the demo's packages takes ~2.5 minutes on 2 busy cores
INSTALL_TIMEOUT = 1200


def _copy_checkout(dest: Path) -> Path:
    """The working tree as git sees it (tracked and new files, not ignored ones) plus the built
    JupyterLab bundle, which is ignored by git but lets the wheel build skip Node.js."""
    assert (REPO / BUNDLE / "package.json").is_file(), (
        f"{BUNDLE} is missing: build the extension first (scripts/test does)"
    )
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    files = [Path(os.fsdecode(name)) for name in listed if name]
    files += [p.relative_to(REPO) for p in (REPO / BUNDLE).rglob("*") if p.is_file()]
    for rel in files:
        src = REPO / rel
        if src.is_file():  # a tracked file deleted in the working tree is not copied
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_checkout(tmp_path_factory.mktemp("binder") / "repo")


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


# --- 1. the Dockerfile ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_repo2docker_builds_from_the_binder_folder(checkout: Path) -> None:
    repo2docker = Path(sys.executable).with_name("repo2docker")
    assert repo2docker.exists(), "repo2docker is missing: pip install jupyter-repo2docker"
    # uid 1000 as on mybinder (the default is the caller's uid, root here)
    done = _run(
        [
            str(repo2docker),
            "--no-build",
            "--Repo2Docker.default_buildpack=None",
            "--user-id=1000",
            "--user-name=jovyan",
            str(checkout),
        ]
    )
    assert done.returncode == 0, done.stderr
    dockerfile = done.stdout
    # the conda buildpack, fed by binder/environment.yml (not the root pyproject.toml)
    assert "Building conda environment for python=3.11" in done.stderr, done.stderr
    assert re.search(
        r'env update -p \$\{NB_PYTHON_PREFIX\} --file "binder/environment.yml"', dockerfile
    )
    assert "pyproject" not in dockerfile
    assert "requirements" not in dockerfile
    # postBuild runs as the notebook user, after the repository is in place
    lines = dockerfile.splitlines()
    copy_repo = lines.index("COPY --chown=1000:1000 src/ ${REPO_DIR}/")
    post_build = lines.index("RUN ./binder/postBuild")
    assert copy_repo < post_build
    assert [ln for ln in lines[:post_build] if ln.startswith("USER ")][-1] == "USER ${NB_USER}"

    # what the image relies on: postBuild is a bash script that stops at the first failure,
    # the environment has Node.js for the extension build and PyTorch's CPU build
    post = (checkout / "binder/postBuild").read_text()
    assert post.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in post
    assert 'pip install --no-cache-dir ".[data,tune]"' in post
    # the server starts through binder/start (KFNB_GPUS for the GPU example, see below)
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in lines
    start = (checkout / "binder/start").read_text()
    assert start.startswith("#!/usr/bin/env bash\n")
    assert start.rstrip().endswith('exec "$@"')
    env = (checkout / "binder/environment.yml").read_text()
    for dependency in ("python=3.11", "nodejs>=20.19", "pytorch-cpu", "pip"):
        assert f"  - {dependency}\n" in env


def test_the_workspace_names_the_panel_and_the_demo_notebook() -> None:
    """binder/workspace.json must agree with the extension's restorer name and the examples."""
    workspace = json.loads((REPO / "binder/workspace.json").read_text())
    panel_id = re.search(
        r"export const PANEL_ID = '([^']+)'", (REPO / "labextension/src/panel.ts").read_text()
    )
    assert panel_id, "PANEL_ID not found in labextension/src/panel.ts"
    layout = workspace["data"]["layout-restorer:data"]
    assert layout["left"] == {"collapsed": False, "visible": True, "current": panel_id.group(1)}
    assert layout["main"]["current"] == f"notebook:{DEMO}"
    assert workspace["data"][f"notebook:{DEMO}"]["data"]["path"] == DEMO
    assert (REPO / DEMO).is_file()
    assert workspace["metadata"]["id"] == "default"


# --- 2. postBuild in a fresh venv ----------------------------------------------------------------


@dataclass
class BinderEnv:
    repo: Path
    venv: Path
    home: Path
    env: dict[str, str]
    seconds: float

    def run(self, *cmd: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return _run([*cmd], **{"cwd": self.repo, "env": self.env, **kwargs})


@pytest.fixture(scope="module")
def binder_env(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BinderEnv]:
    root = tmp_path_factory.mktemp("binder-env")
    venv, home = root / "venv", root / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
        and not k.startswith(("JUPYTER", "KFNB_"))  # JUPYTER_*, JUPYTERLAB_*: the test venv's
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        HOME=str(home),  # the workspace goes to ~/.jupyter/lab/workspaces: a home of its own
        KFNB_HOME=str(root / "kfnb-home"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin/python")
    # environment.yml's conda packages: PyTorch's CPU build (Python and pip come with the venv;
    # Node.js is not needed, the bundle is prebuilt)
    torch = f"torch=={importlib.metadata.version('torch')}"
    done = _run([python, "-m", "pip", "install", "--quiet", torch], env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    done = _run(["bash", "binder/postBuild"], cwd=checkout, env=env)
    assert done.returncode == 0, (
        f"binder/postBuild failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
    )
    seconds = time.monotonic() - start
    print(f"fresh venv + torch + binder/postBuild: {seconds:.0f}s")
    yield BinderEnv(checkout, venv, home, env, seconds)


@pytest.mark.timeout(INSTALL_TIMEOUT)
def test_post_build_installs_kfnb_with_both_extensions_enabled(binder_env: BinderEnv) -> None:
    b = binder_env
    # from the home folder: in the checkout, `python -c` would import the kfnb package there
    where = b.run(
        "python",
        "-c",
        "import kfnb, optuna, sklearn, pandas, torch; print(kfnb.__file__)",
        cwd=b.home,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(b.venv)), where.stdout  # the wheel, not the checkout

    server = b.run("jupyter", "server", "extension", "list")
    assert re.search(r"^\s*kfnb\s.*enabled", server.stdout + server.stderr, re.M), server
    lab = b.run("jupyter", "labextension", "list")
    assert re.search(r"^\s*kfnb v\S+ .*enabled.*OK", lab.stdout + lab.stderr, re.M), lab

    engines = b.run(
        "python",
        "-c",
        "from papermill.engines import papermill_engines as e; print(e.get_engine('kfnb'))",
    )
    assert engines.returncode == 0, (
        f"no papermill engine 'kfnb' in the binder venv:\n{engines.stderr}"
    )


@pytest.mark.timeout(INSTALL_TIMEOUT)
def test_post_build_opens_the_demo_with_the_panel_shown(binder_env: BinderEnv) -> None:
    b = binder_env
    exported = b.run("jupyter", "lab", "workspaces", "export", "default")
    assert exported.returncode == 0, exported.stderr
    workspace = json.loads(exported.stdout)
    expected = json.loads((b.repo / "binder/workspace.json").read_text())
    assert workspace["data"] == expected["data"]
    assert list((b.home / ".jupyter/lab/workspaces").glob("default-*.jupyterlab-workspace"))

    # run again (by hand, outside binder): a layout the user saved since is kept
    mine = {
        "data": {"layout-restorer:data": {"left": {"collapsed": True}}},
        "metadata": {"id": "default"},
    }
    (b.home / "mine.json").write_text(json.dumps(mine))
    assert (
        b.run("jupyter", "lab", "workspaces", "import", str(b.home / "mine.json")).returncode == 0
    )
    # only the workspace part of postBuild: the pip install is checked above
    script = (b.repo / "binder/postBuild").read_text()
    tail = script[script.index("if jupyter lab workspaces export default") :]
    again = b.run("bash", "-c", f"set -euo pipefail\n{tail}")
    assert again.returncode == 0, again.stderr
    assert "kept the default JupyterLab workspace" in again.stdout
    kept = json.loads(b.run("jupyter", "lab", "workspaces", "export", "default").stdout)
    assert kept["data"] == mine["data"]
    # and back to the demo's layout for anything after this test
    assert b.run("jupyter", "lab", "workspaces", "import", "binder/workspace.json").returncode == 0


# --- 3. every example through papermill --engine kfnb ----------------------------------------


def test_every_example_is_checked() -> None:
    assert len(EXAMPLES) >= 8, EXAMPLES
    assert DEMO.removeprefix("examples/") in EXAMPLES


@pytest.mark.timeout(INSTALL_TIMEOUT)
def test_start_gives_a_gpu_id_where_there_is_no_gpu(binder_env: BinderEnv) -> None:
    """digits_gpu.ipynb's network step asks for a GPU (`limit:nvidia.com/gpu:1`); on a machine
    without one (binder's), binder/start sets KFNB_GPUS=0 so the step runs, on the CPU."""
    b = binder_env
    shown = b.run(
        "bash", "binder/start", "python", "-c", "import os; print(os.environ.get('KFNB_GPUS'))"
    )
    assert shown.returncode == 0, shown.stderr
    expected = "0" if shutil.which("nvidia-smi", path=b.env["PATH"]) is None else "None"
    assert shown.stdout.strip() == expected
    mine = b.run(
        "bash",
        "binder/start",
        "python",
        "-c",
        "import os; print(repr(os.environ['KFNB_GPUS']))",
        env={**b.env, "KFNB_GPUS": ""},
    )
    assert mine.stdout.strip() == "''", mine.stderr  # set by the user, even empty: kept


@pytest.mark.timeout(INSTALL_TIMEOUT)
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_with_the_kfnb_engine(
    binder_env: BinderEnv, name: str, tmp_path: Path
) -> None:
    b = binder_env
    out = tmp_path / name
    env = {**b.env, "KFNB_HOME": str(tmp_path / "kfnb-home")}
    done = _run(
        # through binder/start, as the image's server and its kernels run
        ["bash", "binder/start", "papermill", "--engine", "kfnb", f"examples/{name}", str(out)],
        cwd=b.repo,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, f"papermill --engine kfnb {name}:\n{done.stderr[-6000:]}"
    nb = nbformat.read(out, as_version=4)
    errors = [
        (i, o.get("ename"), o.get("evalue"))
        for i, cell in enumerate(nb.cells)
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, errors
    assert nb.metadata.get("papermill", {}).get("exception") in (None, False)
    # cells tagged `skip` (tune_churn's study driver) are no part of the pipeline: not run, and
    # papermill's record says so
    for cell in nb.cells:
        if "skip" in cell.metadata.get("tags", []):
            assert cell.metadata.papermill.status == "skipped", cell.source
            assert not cell.get("outputs"), cell.source
            assert cell.get("execution_count") is None, cell.source
