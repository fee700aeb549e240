"""``papermill --engine kfnb``: real papermill (its CLI as a subprocess, and
``execute_notebook``), real kernels, a run store per test (KFNB_HOME from conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from papermill.engines import papermill_engines
from papermill.exceptions import PapermillExecutionError
from papermill.execute import ERROR_MARKER_TAG

from kfnb.batching.engine import KfnbEngine
from kfnb.tracking import Store

ROOT = Path(__file__).resolve().parents[2]
PAPERMILL = str(Path(sys.executable).with_name("papermill"))
KERNEL = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}


@pytest.fixture(autouse=True)
def engine() -> None:
    """The engine as this checkout defines it (the installed entry point may be older)."""
    papermill_engines.register("kfnb", KfnbEngine)


def cell(source: str, *tags: str) -> Any:
    return new_code_cell(textwrap.dedent(source).strip(), metadata={"tags": list(tags)})


def write(path: Path, *cells: Any, metadata: dict[str, Any] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=list(cells), metadata={**KERNEL, **(metadata or {})}), path)
    return path


def fan_out(folder: Path) -> Path:
    """Two parallel steps that meet at a file barrier: each writes its file and waits for the
    other's, so only an engine that runs them at the same time gets past it."""
    return write(
        folder / "fan.ipynb",
        new_markdown_cell("# Fan-out"),
        cell("n = 1\nbarrier = 'barrier'", "parameters"),
        cell("import os, time\nprint('start', n)", "step:start"),
        cell(
            """
            def meet(me, other):
                open(os.path.join(barrier, me), "w").close()
                t0 = time.time()
                while not os.path.exists(os.path.join(barrier, other)):
                    assert time.time() - t0 < 60, "the other branch never came"
                    time.sleep(0.02)
            os.makedirs(barrier, exist_ok=True)
            base = n * 10
            """
        ),
        cell("meet('left', 'right')\nleft = base + 1\nprint('left', left)", "step:left"),
        cell("meet('right', 'left')\nright = base + 2\nprint('right', right)\nright", "step:right"),
        cell("total = left + right\nprint('total', total)", "step:join"),
    )


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [PAPERMILL, "--engine", "kfnb", "--no-progress-bar", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )


def texts(nb: Any) -> list[str]:
    """Every stream and plain-text output, in notebook order."""
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            if o.output_type == "stream":
                out.append(o.text)
            elif o.output_type == "execute_result":
                out.append(o.data["text/plain"])
    return out


def status(c: Any) -> str:
    return str(c.metadata.get("papermill", {}).get("status"))


def by_tag(nb: Any, tag: str) -> Any:
    return next(c for c in nb.cells if tag in c.metadata.get("tags", []))


def test_cli_runs_parallel_steps_in_one_output_and_caches(tmp_path: Path, store: Store) -> None:
    nb_path = fan_out(tmp_path / "project")
    first = cli("fan.ipynb", "out.ipynb", "-p", "n", "5", cwd=nb_path.parent)
    assert first.returncode == 0, first.stderr
    out = nbformat.read(nb_path.parent / "out.ipynb", as_version=4)
    assert texts(out) == ["start 5\n", "left 51\n", "right 52\n", "52", "total 103\n"]
    code = [c for c in out.cells if c.cell_type == "code"]
    assert [status(c) for c in out.cells] == ["completed"] * len(out.cells)
    assert by_tag(out, "injected-parameters").source.split("\n")[1] == "n = 5"
    assert out.metadata.papermill.parameters == {"n": 5}
    assert [c.execution_count for c in code if c.execution_count] == [1, 2, 3, 4, 5]
    assert all(by_tag(out, f"step:{s}").metadata.papermill.duration for s in ("left", "right"))
    [run] = store.list_runs()
    assert run.status == "SUCCEEDED" and run.params == {"n": 5, "barrier": "barrier"}
    assert run.notebook == str(nb_path)
    assert out.metadata.papermill.kfnb["run_id"] == run.id

    again = cli("fan.ipynb", "again.ipynb", "-p", "n", "5", cwd=nb_path.parent)
    assert again.returncode == 0, again.stderr
    second = store.list_runs()[0]
    assert second.id != run.id
    assert {s.name: s.status for s in store.get_run(second.id).steps} == dict.fromkeys(
        ("start", "left", "right", "join"), "CACHED"
    )
    cached = nbformat.read(nb_path.parent / "again.ipynb", as_version=4)
    assert texts(cached) == texts(out)
    assert by_tag(cached, "step:join").metadata.kfnb["cached_from"] == f"{run.id}/join"


def test_execute_notebook_in_process(tmp_path: Path, store: Store) -> None:
    nb_path = fan_out(tmp_path / "project")
    out_path = tmp_path / "out.ipynb"
    # the engine stays registered after a run (the steps' engine shares its name), and
    # options papermill's CLI cannot pass come as kfnb_options (the cache off here)
    for options in ({}, {"cache": False}):
        nb = papermill.execute_notebook(
            str(nb_path),
            str(out_path),
            parameters={"n": 2, "barrier": str(tmp_path / "b")},
            engine_name="kfnb",
            progress_bar=False,
            kfnb_options=options,
        )
        assert texts(nb)[-1] == "total 43\n"
        assert texts(nbformat.read(out_path, as_version=4)) == texts(nb)
    runs = store.list_runs()
    assert [r.status for r in runs] == ["SUCCEEDED", "SUCCEEDED"]
    for r in runs:  # the same parameters twice, and nothing CACHED: the option was applied
        assert {s.status for s in store.get_run(r.id).steps} == {"SUCCEEDED"}


def test_the_run_takes_its_kernels_from_the_pool_started_before_the_notebook_is_read(
    tmp_path: Path, store: Store
) -> None:
    # the engine starts the kernel pool (its fork server) before it parses the notebook; the
    # run must ask for the same pool, not start a second one beside it
    from kfnb.kernels import shared_pool_stats, shutdown_shared_pools

    shutdown_shared_pools()
    nb_path = fan_out(tmp_path / "project")
    try:
        papermill.execute_notebook(
            str(nb_path),
            str(tmp_path / "out.ipynb"),
            parameters={"n": 1, "barrier": str(tmp_path / "b")},
            engine_name="kfnb",
            progress_bar=False,
            kfnb_options={"cache": False},
        )
        [pool] = shared_pool_stats()
        assert pool["started"] == 4 and pool["size"] == 0  # one kernel a step, none kept
    finally:
        shutdown_shared_pools()


def failing(folder: Path) -> Path:
    return write(
        folder / "failing.ipynb",
        cell("x = 1", "parameters"),
        cell("y = x + 1\nprint('a', y)", "step:a"),
        cell("z = y / 0", "step:b"),
        cell("print('rest of b')"),
        cell("w = z + 1", "step:c"),
        cell("open('skipped-ran', 'w').close()", "step:d", "skip-execution"),
        cell("print('e')", "step:e"),
    )


def test_a_failing_step_gives_the_banner_and_the_exit_code(tmp_path: Path, store: Store) -> None:
    nb_path = failing(tmp_path / "project")
    done = cli("failing.ipynb", "out.ipynb", cwd=nb_path.parent)
    assert done.returncode == 1
    assert "ZeroDivisionError" in done.stderr
    out = nbformat.read(nb_path.parent / "out.ipynb", as_version=4)
    banner = out.cells[0]
    assert ERROR_MARKER_TAG in banner.metadata.tags and "In [2]" in banner.source
    failed = by_tag(out, "step:b")
    assert out.cells[out.cells.index(failed) - 1].metadata.tags == [ERROR_MARKER_TAG]
    assert status(failed) == "failed" and failed.metadata.papermill.exception is True
    assert failed.outputs[-1].ename == "ZeroDivisionError"
    rest = out.cells[out.cells.index(failed) + 1]
    assert status(rest) == "skipped" and not rest.outputs
    c = by_tag(out, "step:c")
    assert status(c) == "skipped" and c.metadata.kfnb["step_status"] == "SKIPPED"
    assert status(by_tag(out, "step:a")) == "completed" and texts(out) == ["a 2\n", "e\n"]
    d = by_tag(out, "skip-execution")
    assert status(d) == "completed" and not d.outputs and d.execution_count is None
    assert not (nb_path.parent / "skipped-ran").exists()
    [run] = store.list_runs()
    assert run.status == "FAILED" and out.metadata.papermill.exception is True

    with pytest.raises(PapermillExecutionError) as err:  # the same from Python
        papermill.execute_notebook(
            str(nb_path), str(tmp_path / "again.ipynb"), engine_name="kfnb", progress_bar=False
        )
    assert err.value.ename == "ZeroDivisionError"


def test_parameters_cell_with_statements_runs(tmp_path: Path, store: Store) -> None:
    """papermill's binder example: imports beside the parameters, for kfnb describe and run."""
    from kfnb.cli import main

    nb_path = write(
        tmp_path / "project" / "binder.ipynb",
        cell(
            "import os\nimport papermill as pm\nbinder_dir = '..'\n"
            "where = os.path.join(binder_dir, 'data')",
            "parameters",
        ),
        cell("print(pm.__name__, where)", "step:show"),
        cell("n = len(where)", "step:count"),
    )
    assert main(["describe", str(nb_path)]) == 0
    done = cli("binder.ipynb", "out.ipynb", "-p", "binder_dir", "/srv", cwd=nb_path.parent)
    assert done.returncode == 0, done.stderr
    out = nbformat.read(nb_path.parent / "out.ipynb", as_version=4)
    assert texts(out) == ["papermill /srv/data\n"]
    [run] = store.list_runs()
    assert run.params == {"binder_dir": "/srv"}

    import kfnb

    assert kfnb.run(nb_path, {"binder_dir": "b"}, store=store).status == "SUCCEEDED"


def test_empty_notebook_writes_its_output(tmp_path: Path) -> None:
    nb_path = write(tmp_path / "empty.ipynb", new_markdown_cell("# Nothing to run"))
    nb = papermill.execute_notebook(
        str(nb_path), str(tmp_path / "out.ipynb"), engine_name="kfnb", progress_bar=False
    )
    assert [status(c) for c in nb.cells] == ["completed"]
    assert nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].source.startswith("#")


@pytest.mark.parametrize(
    ("cells", "metadata", "where", "says"),
    [
        ([cell("x = 1"), cell("print 'python 2'")], {}, 1, "Missing parentheses"),
        ([cell("x = 1\ny = [", "parameters"), cell("print(x)")], {}, 0, "parameters cell"),
        (
            [cell("x <- 1")],
            {"kernelspec": {"name": "ir", "language": "R", "display_name": "R"}},
            0,
            "kernel language is 'R'",
        ),
        ([cell("x = 1")], {"kfnb": {"papermill": {"max_paralel": 2}}}, 0, "'max_parallel'"),
    ],
    ids=["python-2", "parameters-cell", "r-kernel", "option-typo"],
)
def test_refused_notebooks_fail_like_a_cell(
    tmp_path: Path, cells: list[Any], metadata: dict[str, Any], where: int, says: str
) -> None:
    nb_path = write(tmp_path / "refused.ipynb", *cells, metadata=metadata)
    out_path = tmp_path / "out.ipynb"
    with pytest.raises(PapermillExecutionError, match=r"Missing|parameters|kernel|max") as err:
        papermill.execute_notebook(
            str(nb_path), str(out_path), engine_name="kfnb", progress_bar=False
        )
    assert says in err.value.evalue
    out = nbformat.read(out_path, as_version=4)
    assert ERROR_MARKER_TAG in out.cells[0].metadata.tags
    marked = [c for c in out.cells if c.metadata.get("papermill", {}).get("exception")]
    assert len(marked) == 1 and marked[0].source == cells[where].source


BLOCKER = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("kfnb.api", "kfnb.backends", "kfnb.tracking", "kfnb.notebook")):
            raise ImportError(f"{name} blocked for the test")
        return None

sys.meta_path.insert(0, Block())
import papermill
from papermill.engines import papermill_engines
from kfnb.batching.engine import KfnbEngine
if "kfnb" not in papermill_engines._engines:  # the entry point is not installed
    papermill_engines.register("kfnb", KfnbEngine)
print("engine:", papermill_engines.get_engine("kfnb").__module__)
try:
    papermill.execute_notebook(sys.argv[1], sys.argv[2], engine_name="kfnb", progress_bar=False)
except papermill.PapermillExecutionError as err:
    print("refused:", err.evalue)
"""


def test_import_papermill_works_when_kfnb_cannot_run(tmp_path: Path) -> None:
    nb_path = write(tmp_path / "nb.ipynb", cell("x = 1"))
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(nb_path), str(tmp_path / "out.ipynb")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "engine: kfnb.batching.engine" in done.stdout
    assert "refused: kfnb cannot run notebooks here: ImportError" in done.stdout


def test_papermills_command_line_starts_the_fork_server_while_it_imports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kfnb.batching.engine import _start_kernels_ahead
    from kfnb.kernels import forked

    bin_papermill = str(Path(sys.executable).with_name("papermill"))
    env = {"KFNB_PRELOAD": ""}
    for argv in (
        [sys.executable, "-c", "import papermill"],  # any other process: nothing started
        [bin_papermill, "in.ipynb", "out.ipynb"],  # papermill's own engine
        [bin_papermill, "--engine", "nbclient", "in.ipynb", "out.ipynb"],
        ["/somewhere/kfnb", "--engine", "kfnb"],
    ):
        assert not _start_kernels_ahead(argv, env), argv
    assert forked._ahead is None
    assert not _start_kernels_ahead(
        [bin_papermill, "--engine", "kfnb", "a", "b"], {"KFNB_FORK_SERVER": "0"}
    )
    for argv in (
        [bin_papermill, "--engine", "kfnb", "in.ipynb", "out.ipynb"],
        ["/x/papermill/__main__.py", "in.ipynb", "out.ipynb", "--engine=kfnb"],
    ):
        assert _start_kernels_ahead(argv, env), argv
        ahead = forked._ahead
        assert ahead is not None and ahead.alive
        assert forked.take(()) is ahead and forked._ahead is None  # the pool takes it
        other = forked.take(("json",))  # preloads differ: a new one
        assert other is not ahead
        ahead.stop()
        other.stop()
    assert _start_kernels_ahead([bin_papermill, "--engine", "kfnb", "a", "b"], env)
    ahead = forked._ahead
    assert ahead is not None
    replaced = forked.take(("json",))  # one started ahead for other preloads is stopped
    assert not ahead.alive and replaced is not ahead
    replaced.stop()


def test_importing_papermill_elsewhere_starts_no_process(tmp_path: Path) -> None:
    code = (
        "import os, papermill, psutil\n"
        "print(len(psutil.Process(os.getpid()).children(recursive=True)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "0", out.stderr


@pytest.mark.parametrize("engine", ["kfnb", None])
def test_papermills_command_line_with_the_engine_freezes_what_it_holds_until_exit(
    tmp_path: Path, engine: str | None
) -> None:
    """papermill's command line ends with its notebook: under ``--engine kfnb`` what its import
    made (~180k objects) is frozen for the collector, so its exit does not walk them (0.25-0.3
    s); what it makes afterwards is still finalized at exit (a file left open in a reference
    cycle keeps its data). With papermill's own engine nothing changes."""
    nb = write(tmp_path / "one.ipynb", cell("x = 1", "step:one"))
    args = ["--no-progress-bar", *(["--engine", engine] if engine else []), str(nb), "out.ipynb"]
    script = (
        "import atexit, gc, sys\n"  # registered first, runs last: sees what the exit walks
        "atexit.register(lambda: print('at exit', gc.get_freeze_count() > 0))\n"
        f"sys.argv = [{PAPERMILL!r}, *{args!r}]\n"
        "from papermill.cli import papermill\n"
        "papermill.main(sys.argv[1:], standalone_mode=False)\n"
        "print('after', gc.get_freeze_count() > 0)\n"
        "class Holder: pass\n"
        "held = Holder(); held.me = held; held.file = open('kept.txt', 'w')\n"
        "held.file.write('written at exit')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "KFNB_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    frozen = str(engine == "kfnb")
    assert out.stdout.splitlines() == [f"after {frozen}", f"at exit {frozen}"], out.stderr
    assert nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].metadata.papermill
    assert (tmp_path / "kept.txt").read_text() == "written at exit"
