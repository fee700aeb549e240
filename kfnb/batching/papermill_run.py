"""What the ``kfnb`` papermill engine does (``kfnb.batching.engine`` imports this on use).

papermill has already injected the parameters (an ``injected-parameters`` cell after the
``parameters`` cell, ``metadata.papermill.parameters``) and started the notebook
(``nb_man.notebook_start``). Here:

1. the notebook is read into a pipeline as ``kfnb run`` reads it (step tags, or one step when it
   has none), with papermill's ``skip-execution`` cells left out and the injected values as the
   run's parameter values (a string typed for a number, a bool, a list or a dict is converted as
   ``kfnb run -p`` converts it; a name the parameters cell does not declare becomes a parameter
   of its own, as papermill injects it anyway);
2. the pipeline runs through ``kfnb.run`` on the local backend (parallel steps, warm kernels,
   the step cache, a run in the store; where the local backend has a ``workdir`` option, the
   steps run in papermill's working folder, ``--cwd``, as papermill's kernel would, else in
   the notebook's folder, as ``kfnb run``'s); options come from ``execute_notebook(...,
   kfnb_options={...})``, then the environment, then the notebook's metadata
   (``metadata.kfnb.papermill``), then the config file's ``local`` section;
3. as steps end, their cells are filled from the steps' executed notebooks (each cell carries
   its original index in ``metadata.kfnb.cell``): outputs, papermill's per-cell metadata (start,
   end, duration, status), execution counts numbered in notebook order. The notebook is saved
   after each step, by this thread only (the one that calls ``nb_man``).

A failed step leaves its error output on the cell that raised (or on the step's first or last
cell, for a failure while loading or saving values, a dead kernel), marked with papermill's
exception metadata, so papermill's own check adds its banner and raises
``PapermillExecutionError`` (the CLI exits non-zero). Cells of steps that never ran (skipped
after a failure, cancelled) get status ``skipped`` and ``metadata.kfnb.step_status``, not
``completed``. A notebook kfnb refuses (invalid syntax, a parameters cell it cannot read, a
non-Python kernel, an unknown option) gets the error on the cell it concerns (else the first
code cell) the same way, instead of a traceback out of the engine.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import nbformat

log = logging.getLogger("papermill")
OPTIONS_KEY = "papermill"  # notebook metadata: {"kfnb": {"papermill": {<local options>}}}
SKIPPED = "skipped"  # papermill status of a cell that did not run
POLL = 0.2  # seconds between looks at the run while it goes on
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "PRUNED")
DONE_STEPS = ("SUCCEEDED", "CACHED", "FAILED", "SKIPPED", "CANCELED")


class Refused(Exception):
    """kfnb cannot run this notebook; ``cell`` is the index of the cell concerned, if known."""

    def __init__(self, message: str, cell: int | None = None, ename: str = "KfnbError") -> None:
        super().__init__(message)
        self.cell = cell
        self.ename = ename


def execute(
    nb_man: Any,
    kernel_name: str,
    *,
    engine: type | None = None,
    input_path: str | None = None,
    log_output: bool = False,
    stdout_file: IO[str] | None = None,
    stderr_file: IO[str] | None = None,
    kfnb_options: Mapping[str, Any] | None = None,
    **_ignored: Any,
) -> Any:
    """The engine's ``execute_managed_notebook``; returns the run (``None`` if none started)."""
    out = _Output(nb_man, log_output=log_output, stdout=stdout_file, stderr=stderr_file)
    if not _has_code(nb_man.nb):
        out.no_steps()
        return None
    try:
        plan = _plan(nb_man.nb, kernel_name, input_path, dict(kfnb_options or {}))
    except Refused as err:
        out.refuse(err)
        return None
    if not plan.pipeline.steps:
        out.no_steps()
        return None
    try:
        run = _start(plan, engine)
    except Exception as err:
        out.refuse(_refusal(err))
        return None
    out.follow(run, plan)
    return run


# -- reading the notebook ---------------------------------------------------------------------
@dataclasses.dataclass
class _Plan:
    pipeline: Any
    values: dict[str, Any]
    options: dict[str, Any]
    settings: Any


def _refusal(err: BaseException) -> Refused:
    from ..errors import KfnbError

    cell = getattr(err, "cell_index", None)
    if isinstance(err, KfnbError):
        return Refused(str(err), cell if isinstance(cell, int) else None, type(err).__name__)
    return Refused(f"{type(err).__name__}: {err}", None, type(err).__name__)


def _plan(nb: Any, kernel_name: str, input_path: str | None, given: dict[str, Any]) -> _Plan:
    try:
        from ..backends import get_backend
        from ..notebook.parser import parse_notebook
        from ..params import resolve_params
        from ..settings import Settings, working_folder
    except Exception as err:  # a broken install: say so in the notebook
        raise Refused(f"kfnb cannot run notebooks here: {type(err).__name__}: {err}") from err
    try:
        source = _local_path(input_path)
        settings = Settings.load()
        local = get_backend("local")
        names = [o.name for o in local.options()]
        meta_options = _metadata_options(nb, names)
        if "workdir" in names and "workdir" not in meta_options:
            given.setdefault("workdir", str(working_folder()))  # papermill's kernels run in its cwd
        chosen = {**settings.section("local"), **meta_options}
        if (
            "pool_size" in names
            and "pool_size" not in chosen
            and "KFNB_POOL_SIZE" not in settings.env
        ):
            given.setdefault("pool_size", 0)  # a process that ends with the run: none kept warm
        if meta_options:
            merged = {**settings.section("local"), **meta_options}
            settings = dataclasses.replace(
                settings, sections={**settings.sections, "local": merged}
            )
        own = (nb.metadata.get("kernelspec") or {}).get("name")
        if kernel_name and kernel_name != own:  # papermill's -k
            given.setdefault("kernel_name", kernel_name)
        _warm(settings, given, nb.metadata)
        injected = dict((nb.metadata.get("papermill") or {}).get("parameters") or {})
        raw = _for_parsing(nb, {})
        pipeline = parse_notebook(raw, source)
        unknown = {k: v for k, v in injected.items() if k not in pipeline.parameters}
        if unknown:  # papermill injects them anyway: make them parameters of their own
            pipeline = parse_notebook(_for_parsing(nb, unknown), source)
        known = {k: v for k, v in injected.items() if k not in unknown}
        values, strings = {}, []
        for name, value in known.items():
            kind = pipeline.parameters[name].type
            if isinstance(value, str) and kind in ("int", "float", "bool", "list", "dict"):
                strings.append((name, value))  # `-p n 5` arrives typed; `-p flag true` does not
            else:
                values[name] = value
        resolved = resolve_params(pipeline, values, strings)
    except Refused:
        raise
    except Exception as err:
        raise _refusal(err) from err
    return _Plan(pipeline, resolved, given, settings)


def _warm(settings: Any, options: dict[str, Any], metadata: Mapping[str, Any]) -> None:
    """Start the run's kernel pool now (its fork server imports ipykernel, ~0.3 s) so that it
    is under way while the notebook is read; the run takes its kernels from the same pool. A
    bad option is left for the run to report."""
    from ..backends import open_backend
    from ..backends.local import LocalBackend

    try:
        local = open_backend("local", settings, options)
        if isinstance(local, LocalBackend):
            local.warm(0, local.kernel_name(metadata))
    except Exception as err:
        log.debug("kfnb: kernels not started ahead: %s", err)


def _has_code(nb: Any) -> bool:
    """Whether any code cell is there to run (parameters cells alone are not)."""
    for cell in nb.cells:
        tags = set((cell.get("metadata") or {}).get("tags") or [])
        if cell.get("cell_type") != "code" or not cell.source.strip():
            continue
        if tags & {"skip-execution", "parameters", "injected-parameters", "skip"}:
            continue
        return True
    return False


def _local_path(input_path: str | None) -> str | None:
    """The input notebook's path when it is a local file (not ``-``, s3://, http://...)."""
    if not input_path or input_path == "-" or "://" in str(input_path):
        return None
    path = Path(input_path)
    return str(path.resolve()) if path.exists() else None


def _for_parsing(nb: Any, unknown: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook as kfnb reads it: ``skip-execution`` cells emptied (their tags, which may
    start a step, kept), the injected-parameters cell reduced to the names no parameters cell
    declares (the others arrive as the run's values)."""
    raw = copy.deepcopy(dict(nb))
    raw["cells"] = [dict(c) for c in nb.cells]
    for cell in raw["cells"]:
        tags = (cell.get("metadata") or {}).get("tags") or []
        if cell.get("cell_type") != "code":
            continue
        if "skip-execution" in tags:
            cell["source"] = ""
        elif "injected-parameters" in tags:
            cell["source"] = "\n".join(f"{k} = {v!r}" for k, v in unknown.items())
    return raw


def _metadata_options(nb: Any, known: list[str]) -> dict[str, Any]:
    """The local backend's options in ``metadata.kfnb.papermill``, checked by name."""
    from ..config import nearest
    from ..errors import KfnbError

    own = nb.metadata.get("kfnb") or {}
    options = (own.get(OPTIONS_KEY) if isinstance(own, Mapping) else None) or {}
    where = f"notebook metadata kfnb.{OPTIONS_KEY}"
    if not isinstance(options, Mapping):
        raise KfnbError(
            f"{where} must be an object of options", fix='write e.g. {"max_parallel": 4}'
        )
    for key in options:
        if key not in known:
            raise KfnbError(
                f"{where}: unknown option {key!r} of the local backend",
                fix=f"{nearest(key, known)}options: {', '.join(known)}",
            )
    return dict(options)


def _start(plan: _Plan, engine: type | None) -> Any:
    from papermill.engines import papermill_engines

    from .. import api
    from ..backends.local import execute as _steps  # registers the steps' engine on import
    from .engine import ENGINE_NAME

    # where that engine is registered as "kfnb" too, this one takes the name back (it hands
    # the steps' calls on), so a later execute_notebook(engine_name="kfnb") still finds it
    if engine is not None and papermill_engines._engines.get(ENGINE_NAME) is not engine:
        papermill_engines.register(ENGINE_NAME, engine)
    del _steps
    return api.run(plan.pipeline, plan.values, settings=plan.settings, wait=False, **plan.options)


# -- the output notebook ----------------------------------------------------------------------
class _Output:
    """Fills ``nb_man.nb`` from a run's executed step notebooks. Only this object, in the
    engine's thread, calls ``nb_man``."""

    def __init__(
        self, nb_man: Any, *, log_output: bool, stdout: IO[str] | None, stderr: IO[str] | None
    ) -> None:
        self.nb_man = nb_man
        self.nb = nb_man.nb
        self.log_output = log_output
        self.stdout = stdout
        self.stderr = stderr
        self.filled: set[int] = set()  # cells whose results are in
        self.done: set[str] = set()  # steps collected
        self.started: set[str] = set()

    # what kfnb refused, or had nothing to run
    def refuse(self, err: Refused) -> None:
        cells = self.nb.cells
        index = err.cell if err.cell is not None and 0 <= err.cell < len(cells) else None
        if index is None or cells[index].get("cell_type") != "code":
            index = next((i for i, c in enumerate(cells) if c.get("cell_type") == "code"), None)
        if index is None:
            cell = nbformat.v4.new_code_cell("# kfnb could not run this notebook")
            cell.metadata["papermill"] = {}
            cells.append(cell)
            index = len(cells) - 1
        cell = cells[index]
        cell.outputs = [_error_output(err.ename, str(err), [str(err)])]
        self._failed(cell, index)
        for i, other in enumerate(cells):
            if i != index and other.get("cell_type") == "code":
                _status(other, SKIPPED)
        self.nb_man.save()

    def no_steps(self) -> None:
        """Nothing to run (no code, or only parameters): every cell is complete."""
        for i, cell in enumerate(self.nb.cells):
            self._complete(cell, i)
        self.nb_man.save()

    # following a run
    def follow(self, run: Any, plan: _Plan) -> None:
        pipeline = plan.pipeline
        self.pipeline = pipeline
        self.step_of: dict[int, str] = {}
        for step in pipeline.steps:
            for c in step.cells:
                self.step_of[c.index] = step.name
        self.prelude = {c.index for c in pipeline.prelude}
        interrupted: BaseException | None = None
        while True:
            try:
                status = run.handle.wait(POLL) if run.handle is not None else run.status
            except KeyboardInterrupt as err:  # papermill's Ctrl-C: stop the run, keep results
                interrupted = err
                run.cancel()
                continue
            record = run.record
            self._collect(record)
            if status in TERMINAL and record.status in TERMINAL:
                break
            if interrupted is not None and run.handle is None:
                break
        self._finish(record)
        if interrupted is not None:
            raise interrupted

    def _collect(self, record: Any) -> None:
        changed = False
        for step in record.steps:
            if step.name in self.done:
                continue
            if step.status == "RUNNING" and step.name not in self.started:
                self.started.add(step.name)
                first = self._cells_of(step.name)[:1]
                for i in first:
                    self.nb.cells[i].metadata.setdefault("papermill", {})["status"] = "running"
                changed = True
            if step.status in DONE_STEPS:
                self.done.add(step.name)
                self._fill_step(record, step)
                changed = True
        if changed:
            self.nb_man.save()

    def _cells_of(self, step: str) -> list[int]:
        return sorted(i for i, s in self.step_of.items() if s == step)

    def _fill_step(self, record: Any, step: Any) -> None:
        cells = self._cells_of(step.name)
        ran = step.status in ("SUCCEEDED", "CACHED", "FAILED")
        executed = _executed(record, step) if ran else None
        got_error = False
        if executed is not None:
            for cell in executed.cells:
                meta = cell.get("metadata", {}).get("kfnb", {})
                index = meta.get("cell")
                if not isinstance(index, int) or not 0 <= index < len(self.nb.cells):
                    continue
                if index in self.filled or meta.get("role") not in ("step", "prelude"):
                    continue
                if meta.get("role") == "prelude" and index not in self.prelude:
                    continue
                pm = cell.get("metadata", {}).get("papermill", {})
                if pm.get("status") == "pending" and not cell.get("outputs"):
                    continue  # not reached (an earlier cell failed)
                got_error |= self._take(index, cell, step)
        for i in cells:
            target = self.nb.cells[i]
            _kfnb_meta(target, step)
            if i in self.filled:
                continue
            if step.status in ("SUCCEEDED", "CACHED") and _not_for_running(target):
                self._complete(target, i)  # as papermill: completed, no outputs
            elif step.status != "FAILED" or got_error or not ran:
                _status(target, SKIPPED)
        if step.status == "FAILED" and not got_error:
            self._step_error(step, cells)

    def _take(self, index: int, cell: Any, step: Any) -> bool:
        """Copy one executed cell into the output notebook; whether it holds an error."""
        target = self.nb.cells[index]
        target.outputs = copy.deepcopy(list(cell.get("outputs", [])))
        target.execution_count = cell.get("execution_count")
        pm = dict(cell.get("metadata", {}).get("papermill", {}))
        target.metadata["papermill"] = {
            "exception": pm.get("exception"),
            "start_time": pm.get("start_time"),
            "end_time": pm.get("end_time"),
            "duration": pm.get("duration"),
            "status": pm.get("status") or "completed",
        }
        self.filled.add(index)
        self._stream(target.outputs)
        error = any(o.get("output_type") == "error" for o in target.outputs)
        if error or pm.get("exception"):
            self._failed(target, index)
            return True
        if self.nb_man.pbar:
            self.nb_man.pbar.update(1)
        return False

    def _step_error(self, step: Any, cells: list[int]) -> None:
        """A failed step whose error is on no cell of the user's (loading or saving its values,
        a dead kernel, a step that could not start): put it on the cell it names, else the
        step's first cell (inputs) or its last."""
        error = step.error or {}
        index = error.get("cell")
        if not isinstance(index, int) or index not in cells:
            code = [i for i in cells if self.nb.cells[i].get("cell_type") == "code"] or [0]
            index = code[0] if error.get("role") == "inputs" else code[-1]
        if not 0 <= index < len(self.nb.cells):
            return
        target = self.nb.cells[index]
        if target.get("cell_type") != "code":
            return
        tb = str(error.get("traceback") or error.get("message") or "").splitlines()
        evalue = str(error.get("evalue") or error.get("message") or "the step failed")
        target.outputs = [
            *target.get("outputs", []),
            _error_output(str(error.get("ename") or "StepFailed"), evalue, tb),
        ]
        self.filled.add(index)
        self._failed(target, index)

    def _finish(self, record: Any) -> None:
        """Every cell's final state, execution counts in notebook order, the run's id."""
        for step in record.steps:
            if step.name not in self.done:
                self.done.add(step.name)
                self._fill_step(record, step)
        for i, cell in enumerate(self.nb.cells):
            if i in self.filled or cell.get("cell_type") != "code":
                continue
            state = cell.metadata.get("papermill", {}).get("status")
            if state in (SKIPPED, "failed"):
                continue
            if i in self.prelude and record.status != "SUCCEEDED":
                _status(cell, SKIPPED)  # no step got far enough to run it
            elif i in self.step_of or (cell.source.strip() and _skip_tagged(cell)):
                _status(cell, SKIPPED)
            else:  # parameters, injected parameters, metrics, empty, skip-execution cells
                self._complete(cell, i)
        count = 0
        for cell in self.nb.cells:
            if cell.get("cell_type") == "code" and cell.get("execution_count") is not None:
                count += 1
                cell.execution_count = count
                for out in cell.outputs:
                    if "execution_count" in out:
                        out["execution_count"] = count
        if record.status != "SUCCEEDED" and not self._has_error():
            index = next(
                (i for i, c in enumerate(self.nb.cells) if c.get("cell_type") == "code"), None
            )
            if index is not None:
                message = record.error or f"the kfnb run {record.id} ended {record.status}"
                cell = self.nb.cells[index]
                cell.outputs = [*cell.outputs, _error_output("KfnbRunError", message, [message])]
                self._failed(cell, index)
        self.nb.metadata.setdefault("papermill", {})["kfnb"] = {
            "run_id": record.id,
            "status": record.status,
            "steps": {s.name: s.status for s in record.steps},
        }
        self.nb_man.save()

    def _has_error(self) -> bool:
        return any(
            c.get("metadata", {}).get("papermill", {}).get("exception") is True
            for c in self.nb.cells
        )

    def _complete(self, cell: Any, index: int) -> None:
        meta = cell.metadata.setdefault("papermill", {})
        if meta.get("status") in (None, "pending", "running"):
            meta["status"] = "completed"
            if self.nb_man.pbar:
                self.nb_man.pbar.update(1)

    def _failed(self, cell: Any, index: int) -> None:
        meta = cell.metadata.setdefault("papermill", {})
        meta.setdefault("start_time", None)
        self.nb_man.cell_exception(cell, index)

    def _stream(self, outputs: list[Any]) -> None:
        """papermill's --stdout-file / --stderr-file / --log-output for the collected cells."""
        for out in outputs:
            if out.get("output_type") != "stream":
                continue
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            target = self.stdout if out.get("name") == "stdout" else self.stderr
            if target is not None:
                target.write(text)
                target.flush()
            if self.log_output:
                log.info(text.rstrip("\n"))


def _executed(record: Any, step: Any) -> Any:
    candidates = []
    if step.output_notebook:
        candidates.append(Path(step.output_notebook))
    candidates.append(Path(record.artifacts_dir) / "executed" / f"{step.name}.ipynb")
    for path in candidates:
        for _ in range(3):  # the step's thread may still be closing the file
            try:
                return nbformat.read(str(path), as_version=4)
            except FileNotFoundError:
                break
            except Exception:
                time.sleep(0.05)
    return None


def _not_for_running(cell: Any) -> bool:
    """An empty cell, or one papermill (nbclient) skips: ``skip-execution``."""
    tags = cell.get("metadata", {}).get("tags") or []
    return not cell.source.strip() or "skip-execution" in tags


def _skip_tagged(cell: Any) -> bool:
    return "skip" in (cell.get("metadata", {}).get("tags") or [])


def _status(cell: Any, status: str) -> None:
    meta = cell.metadata.setdefault("papermill", {})
    meta["status"] = status
    meta.setdefault("exception", None)


def _kfnb_meta(cell: Any, step: Any) -> None:
    meta = {"step": step.name, "step_status": step.status}
    if step.cached_from:
        meta["cached_from"] = step.cached_from
    cell.metadata["kfnb"] = meta


def _error_output(ename: str, evalue: str, traceback: list[str]) -> Any:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=traceback)
