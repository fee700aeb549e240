"""What a training job runs: a real Python module made from a notebook function, with everything
it needs, so that nothing surprises it on another process or machine.

``Program.from_function(train, args)`` reads the function's source and follows the global names
it uses (kfnb's own static analysis, ``kfnb.notebook.names``) through the namespace it was
defined in:

- a module (``torch``, ``np``) becomes an import (``import numpy as np``);
- a function or class defined in the notebook is copied in, and what *it* uses is followed too;
- an object imported from a package (``load_digits``) becomes ``from package import name``;
- any other value (``X_train``, a config dict) is a *notebook value*: saved beside the module
  with ``kfnb.marshal`` (as values flow between pipeline steps) and loaded before the function
  runs. ``value_bytes`` tells how much travels, so a cluster backend can refuse a job whose
  values are too big to ship, naming them.

The function's signature types its arguments: ``lr: float = 1e-3`` is a float parameter, as a
pipeline parameter is; the values given are checked and cast the same way (``kfnb.params``), and
an error names the argument, its type and the value. ``write(folder)`` lays the program out:
``program.py`` (runnable with ``python`` or ``torchrun``), ``args.json``, ``values/``.
"""

from __future__ import annotations

import builtins
import difflib
import inspect
import json
import sys
import textwrap
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dag import Param, Pipeline
from ..errors import KfnbError
from ..notebook.names import analyze
from ..params import ParameterError, check_value, parse_string

__all__ = ["PROGRAM_FILE", "Program", "ProgramError"]

PROGRAM_FILE = "program.py"
CELL_FILE = "cell.py"
CELLS_FILE = "cells.json"
ARGS_FILE = "args.json"
VALUES_DIR = "values"

#: annotation -> kfnb parameter type (also when annotations are strings: PEP 563)
_KINDS = {int: "int", float: "float", bool: "bool", str: "str", list: "list", dict: "dict"}
_KIND_NAMES = {"int", "float", "bool", "str", "list", "dict"}


class ProgramError(KfnbError):
    """The function cannot be made into a program (no source, an undefined name...)."""


@dataclass
class Program:
    """A training program: module text, the function it calls, its typed arguments and the
    notebook values it reads."""

    name: str
    source: str
    entry: str
    parameters: dict[str, Param]
    args: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)  # more files beside program.py

    @classmethod
    def from_function(
        cls,
        fn: Any,
        args: Mapping[str, Any] | None = None,
        arg_strings: Iterable[tuple[str, str]] = (),
        *,
        partial: bool = False,
    ) -> Program:
        if not inspect.isfunction(fn):
            raise ProgramError(
                f"kfnb.train needs a function defined with def, not {type(fn).__name__}",
                fix="define the training code as `def train(...):` and pass `train`",
            )
        if fn.__name__ == "<lambda>":
            raise ProgramError(
                "kfnb.train cannot ship a lambda", fix="define it with def and pass the function"
            )
        collected = _Collector(fn.__globals__, getattr(fn, "__module__", None))
        collected.function(fn)
        parameters, required = signature_parameters(fn)
        program = cls(
            name=fn.__name__,
            source=collected.module(fn.__name__),
            entry=fn.__name__,
            parameters=parameters,
            args={},
            values=collected.values,
            required=required,
        )
        program.args = program.check_args(args or {}, arg_strings, partial=partial)
        return program

    @classmethod
    def from_cell(cls, source: str, namespace: Mapping[str, Any], name: str = "cell") -> Program:
        """A notebook cell as a program (``%%train``): the cell's code runs at the top level
        of each rank, after the imports, notebook code and values it uses."""
        code = _plain_python(source)
        collected = _Collector(namespace, namespace.get("__name__"))
        collected.code(code, needed_by="the cell")
        text = collected.module(
            "_kfnb_cell",
            origin="a notebook cell",
            runner=[
                "",
                "",
                "def _kfnb_cell():",
                "    from kfnb.training.entry import run_file",
                "",
                f"    run_file(__file__, {CELL_FILE!r}, globals())",
            ],
        )
        return cls(name, text, "_kfnb_cell", {}, {}, collected.values, files={CELL_FILE: code})

    @classmethod
    def from_step(
        cls,
        pipeline: Pipeline,
        step: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        param_strings: Iterable[tuple[str, str]] = (),
    ) -> Program:
        """A pipeline step as a program (``kfnb train NOTEBOOK --step NAME``): each rank runs
        the notebook's prelude (``imports``, ``functions`` cells), re-imports what the step
        imports from upstream, then the step's cells, with the pipeline parameters (typed as
        in a run: ``params``, ``param_strings``) and the step's ``inputs`` (values its upstream
        steps produced) in its namespace."""
        s = pipeline.step(step)
        cells = [
            {"index": c.index, "source": _plain_python(c.source, f"cell {c.index}")}
            for c in [*pipeline.prelude, *s.cells]
        ]
        imports = sorted(set(s.imports.values()))
        files = {CELLS_FILE: json.dumps({"notebook": pipeline.source, "cells": cells})}
        names = ", ".join(repr(n) for n in sorted(inputs))
        lines = [
            f"# Generated by kfnb from step {s.name!r} of pipeline {pipeline.name!r}: each rank",
            "# runs the notebook's prelude and the step's cells (cells.json) with the pipeline",
            "# parameters (args.json) and the step's inputs (values/).",
            *imports,
        ]
        if inputs:
            lines += [
                "",
                "from kfnb.training.entry import load_values as _kfnb_load_values",
                "",
                f"globals().update(_kfnb_load_values(__file__, [{names}]))",
            ]
        lines += [
            "",
            "",
            "def _kfnb_step(**params):",
            "    from kfnb.training.entry import run_cells",
            "",
            "    globals().update(params)",
            f"    run_cells(__file__, {CELLS_FILE!r}, globals())",
            "",
            "",
            'if __name__ == "__main__":',
            "    from kfnb.training.entry import main as _kfnb_main",
            "",
            "    _kfnb_main(_kfnb_step, __file__)",
            "",
        ]
        program = cls(
            name=s.name,
            source="\n".join(lines),
            entry="_kfnb_step",
            parameters=dict(pipeline.parameters),
            args={},
            values=dict(inputs),
            files=files,
        )
        program.args = program.check_args(params or {}, param_strings)
        return program

    @classmethod
    def from_script(cls, path: str | Path, argv: Iterable[str] = ()) -> Program:
        """A Python script as a program: each rank runs it as ``__main__`` with ``argv``, its
        folder first on ``sys.path`` (it may import its neighbours)."""
        script = Path(path)
        try:
            text = script.read_text()
        except OSError as err:
            raise ProgramError(
                f"cannot read the script {str(script)!r}: {err.strerror}", fix="check the path"
            ) from None
        folder = str(script.resolve().parent)
        runner = [
            f"# Generated by kfnb to run the script {script.name} as each rank of a job.",
            "",
            "",
            "def _kfnb_script():",
            "    from kfnb.training.entry import run_file",
            "",
            f"    run_file(__file__, {script.name!r}, {{'__name__': '__main__'}},",
            f"             argv={list(argv)!r}, path={folder!r})",
            "",
            "",
            'if __name__ == "__main__":',
            "    from kfnb.training.entry import main as _kfnb_main",
            "",
            "    _kfnb_main(_kfnb_script, __file__)",
            "",
        ]
        stem = script.stem if script.stem.isidentifier() else "script"
        return cls(stem, "\n".join(runner), "_kfnb_script", {}, {}, files={script.name: text})

    def check_args(
        self,
        values: Mapping[str, Any],
        strings: Iterable[tuple[str, str]] = (),
        *,
        partial: bool = False,
    ) -> dict[str, Any]:
        """The arguments the function gets: defaults, then ``values`` (typed), then ``strings``
        (texts from a command line or a form), each checked against the signature.
        ``partial``: a required one may be missing (a study's trials give it)."""
        shape = Pipeline(self.name, parameters=self.parameters)
        out = {n: p.default for n, p in self.parameters.items() if n not in self.required}
        try:
            for name, value in values.items():
                self._known(name)
                out[name] = check_value(shape, name, value) if self._typed(name) else value
            for name, text in strings:
                self._known(name)
                out[name] = parse_string(shape, name, text)
        except ParameterError as err:
            raise ParameterError(
                err.message.replace(f"parameter {name!r}", f"argument {name!r} of {self.name}()"),
                fix=err.fix,
            ) from None
        missing = [n for n in self.required if n not in out]
        if missing and not partial:
            raise ParameterError(
                f"{self.name}() needs a value for {', '.join(repr(m) for m in missing)}",
                fix="pass it in args, e.g. args={"
                + ", ".join(f"{m!r}: ..." for m in missing)
                + "}",
            )
        return out

    def recorded_args(self) -> dict[str, Any]:
        """The arguments as the run store keeps them: JSON values, ``repr`` for the rest."""
        out: dict[str, Any] = {}
        for name, value in self.args.items():
            try:
                json.dumps(value)
                out[name] = value
            except (TypeError, ValueError):
                out[name] = repr(value)
        return out

    def spec(self, *, procs: int, gpus: int, nodes: int, image: str | None = None) -> dict:
        """What a ``train`` run keeps of what it ran (``spec.train``)."""
        train: dict[str, Any] = {
            "entry": self.entry,
            "procs_per_node": procs,
            "gpus_per_node": gpus,
            "nodes": nodes,
            "values": sorted(self.values),
        }
        if image is not None:
            train["image"] = image
        return {"train": train}

    def _typed(self, name: str) -> bool:
        return self.parameters[name].type != "any"

    def _known(self, name: str) -> None:
        if name in self.parameters:
            return
        close = difflib.get_close_matches(name, list(self.parameters), n=1, cutoff=0.6)
        known = ", ".join(self.parameters) or "none"
        raise ParameterError(
            f"{self.name}() has no argument {name!r}",
            fix=f"did you mean {close[0]!r}?" if close else f"its arguments: {known}",
        )

    def write(self, folder: Path) -> Path:
        """Lay the program out in ``folder``; the path of its module."""
        from .. import marshal

        folder.mkdir(parents=True, exist_ok=True)
        (folder / ARGS_FILE).write_text(json.dumps(self.args))
        if self.values:
            marshal.save_all(self.values, folder / VALUES_DIR, step=self.name)
        for name, text in self.files.items():
            (folder / name).write_text(text)
        path = folder / PROGRAM_FILE
        path.write_text(self.source)
        return path

    def value_bytes(self, folder: Path) -> dict[str, int]:
        """Bytes of each notebook value as written by ``write(folder)``."""
        values = folder / VALUES_DIR
        return {
            name: sum(
                q.stat().st_size
                for p in values.glob(f"{name}.*")
                for q in ([p] if p.is_file() else p.rglob("*"))
                if q.is_file()
            )
            for name in self.values
        }


def signature_parameters(fn: Any) -> tuple[dict[str, Param], tuple[str, ...]]:
    """The function's arguments as typed parameters, and those without a default."""
    params: dict[str, Param] = {}
    required: list[str] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.kind is p.POSITIONAL_ONLY:
            raise ProgramError(
                f"{fn.__name__}() has the positional-only argument {p.name!r}; kfnb passes "
                "arguments by name",
                fix="remove the `/` from its signature",
            )
        default = None if p.default is p.empty else p.default
        if p.default is p.empty:
            required.append(p.name)
        params[p.name] = Param(p.name, _kind(p.annotation, p.default), default)
    return params, tuple(required)


def _kind(annotation: Any, default: Any) -> str:
    if isinstance(annotation, str):
        return annotation if annotation in _KIND_NAMES else "any"
    if annotation in _KINDS:
        return _KINDS[annotation]
    origin = getattr(annotation, "__origin__", None)
    if origin in _KINDS:
        return _KINDS[origin]
    if annotation is inspect.Parameter.empty and default is not inspect.Parameter.empty:
        return _KINDS.get(type(default), "any")
    return "any"


class _Collector:
    """Follows the global names of a function through ``namespace``."""

    def __init__(self, namespace: Mapping[str, Any], module: str | None) -> None:
        self.namespace = namespace
        self.module_name = module
        self.imports: dict[str, str] = {}  # name -> import line
        self.definitions: list[str] = []  # sources, dependencies first
        self.values: dict[str, Any] = {}
        self._seen: set[str] = set()

    def function(self, obj: Any) -> None:
        """Copy ``obj`` (a function or class of the notebook) in, after what it needs."""
        try:
            source = textwrap.dedent(inspect.getsource(obj))
        except (OSError, TypeError) as err:
            raise ProgramError(
                f"cannot read the source of {obj.__name__} ({err})",
                fix="define it in a notebook cell or a .py file (not with exec or eval)",
            ) from None
        own = getattr(obj, "__name__", "")
        self.code(source, needed_by=f"{own}()", own=own, namespace=_globals_of(obj))
        self.definitions.append(source)

    def code(
        self,
        source: str,
        needed_by: str,
        own: str = "",
        namespace: Mapping[str, Any] | None = None,
    ) -> None:
        """Follow the global names ``source`` uses (looked up in ``namespace``, where the code
        was defined; default: the collector's)."""
        facts = analyze([source])
        for name in sorted(facts.reads | facts.deferred_reads):
            if name != own:
                self.name(name, needed_by, self.namespace if namespace is None else namespace)

    def name(self, name: str, needed_by: str, namespace: Mapping[str, Any]) -> None:
        if name in self._seen:
            return
        self._seen.add(name)
        if name not in namespace:
            if hasattr(builtins, name):
                return
            raise ProgramError(
                f"{needed_by} uses {name!r}, which is not defined where it was defined",
                fix=f"define {name!r} (run the cell that does), or pass it as an argument",
            )
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            self.imports[name] = _import_module(value.__name__, name)
        elif inspect.isfunction(value) or inspect.isclass(value):
            home = getattr(value, "__module__", None)
            if home == self.module_name or home == "__main__":
                self.function(value)
            elif home and _importable(home, value):
                self.imports[name] = _import_from(home, value.__qualname__, name)
            else:
                self.values[name] = value
        elif _importable(getattr(value, "__module__", None), value):
            self.imports[name] = _import_from(value.__module__, value.__qualname__, name)
        else:
            self.values[name] = value

    def module(self, entry: str, origin: str | None = None, runner: list[str] | None = None) -> str:
        lines = [
            f"# Generated by kfnb from {origin or f'the function {entry}() of a notebook'}: its",
            "# imports, the notebook code it uses and the notebook values it reads (saved in",
            "# values/). Run it with python or torchrun.",
            *sorted(set(self.imports.values())),
        ]
        if self.values:
            names = ", ".join(repr(n) for n in self.values)
            lines += [
                "",
                "from kfnb.training.entry import load_values as _kfnb_load_values",
                "",
                f"globals().update(_kfnb_load_values(__file__, [{names}]))",
            ]
        for source in self.definitions:
            lines += ["", "", source.rstrip("\n")]
        lines += runner or []
        lines += [
            "",
            "",
            'if __name__ == "__main__":',
            "    from kfnb.training.entry import main as _kfnb_main",
            "",
            f"    _kfnb_main({entry}, __file__)",
            "",
        ]
        return "\n".join(lines)


def _import_module(module: str, name: str) -> str:
    if module == name:
        return f"import {module}"
    if "." in module and module.rsplit(".", 1)[1] == name:
        return f"from {module.rsplit('.', 1)[0]} import {name}"
    return f"import {module} as {name}"


def _import_from(module: str, qualname: str, name: str) -> str:
    return f"from {module} import {qualname}" + ("" if qualname == name else f" as {name}")


def _importable(module: str | None, value: Any) -> bool:
    """Whether ``value`` is what ``from module import qualname`` gives (in a fresh process)."""
    if not module or module == "__main__" or not isinstance(module, str):
        return False
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(qualname, str) or "." in qualname or "<" in qualname:
        return False
    loaded = sys.modules.get(module)
    return loaded is not None and getattr(loaded, qualname, None) is value and _real(loaded)


def _real(module: types.ModuleType) -> bool:
    """A module a fresh interpreter can import (from a file or built in), not one made at run
    time (an IPython cell's namespace)."""
    return (
        getattr(module, "__spec__", None) is not None or module.__name__ in sys.builtin_module_names
    )


def _plain_python(source: str, where: str = "the cell") -> str:
    """The cell as Python; IPython syntax (magics, ``!cmd``) cannot run in a rank."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return source
    plain = TransformerManager().transform_cell(source)
    if "get_ipython()" in plain and "get_ipython()" not in source:
        line = next(
            (n for n, text in enumerate(source.splitlines(), 1) if text.lstrip()[:1] in "%!"),
            1,
        )
        raise ProgramError(
            f"line {line} of {where} is IPython syntax (a magic or a shell command), which a "
            "training rank cannot run: ranks run plain Python",
            fix="use subprocess for shell commands, and drop the magic from the training cell",
        )
    return plain


def _globals_of(obj: Any) -> Mapping[str, Any] | None:
    """The namespace a function or class was defined in (None: not known)."""
    found = getattr(obj, "__globals__", None)
    if found is None:
        module = sys.modules.get(getattr(obj, "__module__", "") or "")
        found = getattr(module, "__dict__", None)
    return found
