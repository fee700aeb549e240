"""What a study tunes: ``Made`` holds a notebook's pipeline or a function's training program,
the parameters fixed for every trial, and what the notebook's ``katib_metadata`` says."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import KfnbError
from .spec import from_metadata, katib_metadata


class Made:
    """What a study tunes: a pipeline (``pipeline``) or a training program (``program``)."""

    def __init__(
        self,
        source: Any,
        *,
        pipeline: Any = None,
        program: Any = None,
        fixed: dict[str, Any],
        metadata: dict[str, Any],
    ) -> None:
        self.source = source  # what the user passed: a path, a Pipeline, a function
        self.pipeline = pipeline
        self.program = program
        self.fixed = fixed
        self.metadata = metadata

    @property
    def name(self) -> str:
        return str(self.pipeline.name if self.pipeline is not None else self.program.name)

    @property
    def notebook(self) -> str | None:
        if self.pipeline is not None and self.pipeline.source:
            return str(Path(self.pipeline.source).resolve())
        return None

    @property
    def kept(self) -> Any:
        """What a ``Study`` keeps to run again (``resume``, ``run_best``): a notebook path,
        resolved now, since the process may change folders before then; else what was
        passed (a ``Pipeline``, a function)."""
        if isinstance(self.source, (str, os.PathLike)) and self.notebook:
            return self.notebook
        return self.source

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(
            self.pipeline.parameters if self.pipeline is not None else self.program.parameters
        )

    @property
    def owner(self) -> str:
        if self.pipeline is not None:
            return f"pipeline {self.pipeline.name!r}"
        return f"{self.program.name}()"

    def target_info(self) -> dict[str, Any]:
        if self.pipeline is not None:
            return {"notebook": self.notebook} if self.notebook else {"pipeline": self.name}
        return {"function": self.program.name}


def make_target(
    target: Any, params: Mapping[str, Any] | None, strings: Iterable[tuple[str, str]]
) -> Made:
    from ..dag import Pipeline
    from ..params import resolve_params

    if target is None:
        raise KfnbError(
            "kfnb.tune needs what to tune: a notebook path or a training function",
            fix='kfnb.tune("churn.ipynb", space={...}, objective="accuracy")',
        )
    strings = list(strings)
    if isinstance(target, (str, os.PathLike, Pipeline)):
        pipeline = (
            target if isinstance(target, Pipeline) else Pipeline.from_notebook(os.fspath(target))
        )
        meta = katib_metadata(pipeline.source) if pipeline.source else {}
        given = dict(params or {})
        values = resolve_params(pipeline, given, strings)
        named = set(given) | {n for n, _ in strings}
        fixed = {n: v for n, v in values.items() if n in named}
        where = str(pipeline.source or pipeline.name)
        return Made(target, pipeline=pipeline, fixed=fixed, metadata=from_metadata(meta, where))
    from ..training import Program

    program = Program.from_function(target, partial=True)  # the trials give what is tuned
    named = set(params or {}) | {n for n, _ in strings}
    fixed = dict(program.check_args(params or {}, strings, partial=True)) if named else {}
    return Made(
        target,
        program=program,
        fixed={n: v for n, v in fixed.items() if n in named},
        metadata={},
    )
