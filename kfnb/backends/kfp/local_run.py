"""Run a compiled pipeline with KFP's own local runner, without a cluster.

``kfp.local`` with ``SubprocessRunner(use_venv=False)`` executes the compiled IR (the same YAML
that would be submitted) task by task in subprocesses of this Python: each task runs the very
component code a pod would run. That makes it the honest check of a compilation on a machine
without Kubernetes, and a quick way for a user to try a pipeline before submitting it.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import KfnbError
from .compiler import DATA, METRICS, NOTEBOOK, Compiled


class LocalKfpError(KfnbError):
    """The compiled pipeline did not run to the end under ``kfp.local``."""


@dataclass
class LocalKfpRun:
    """What a ``kfp.local`` run of a compiled pipeline left in its pipeline root."""

    root: Path  # this run's folder: <pipeline root>/<pipeline name>-<timestamp>
    tasks: dict[str, str] = field(default_factory=dict)  # kfnb step -> KFP task name

    def task_dir(self, step: str) -> Path:
        return self.root / self.tasks.get(step, step)

    def outputs(self, step: str) -> dict[str, Any]:
        """The values ``step`` handed on, loaded back (as ``PipelineRun.outputs`` does)."""
        from ... import marshal

        return marshal.load_folder(self.task_dir(step) / DATA, step=step)

    def metrics(self, step: str | None = None) -> dict[str, float]:
        """The metrics of one step's ``kfnb_metrics`` artifact, or of all steps together."""
        steps = [step] if step else list(self.tasks)
        values: dict[str, float] = {}
        for s in steps:
            out = self.task_dir(s) / "executor_output.json"
            if not out.exists():
                continue
            artifacts = json.loads(out.read_text()).get("artifacts", {})
            for art in artifacts.get(METRICS, {}).get("artifacts", []):
                values.update(art.get("metadata", {}))
        return values

    def executed_notebook(self, step: str) -> Path:
        return self.task_dir(step) / NOTEBOOK


def run_compiled(
    compiled: Compiled,
    params: dict[str, Any] | None = None,
    *,
    pipeline_root: str | Path | None = None,
) -> LocalKfpRun:
    """Run ``compiled`` with ``kfp.local`` (subprocesses of this Python, no venv, nothing
    installed) and return where its artifacts are. Raises ``LocalKfpError`` if a task fails."""
    from kfp import components, local

    root = Path(pipeline_root or tempfile.mkdtemp(prefix="kfnb-kfp-local-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in root.iterdir()}
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True
    )
    pipeline = components.load_component_from_file(str(compiled.path))
    try:
        with warnings.catch_warnings():
            # what only a cluster applies (accelerators, display names) and "the base image is
            # not this Python": both expected when running the pod's code here
            warnings.filterwarnings("ignore", message=".*have no effect in the current local")
            warnings.filterwarnings("ignore", message=".*non-Python base image")
            pipeline(**(params or {}))
    except RuntimeError as err:
        raise LocalKfpError(f"pipeline {compiled.name!r} failed under kfp.local: {err}") from err
    new = sorted(p for p in root.iterdir() if p.name not in before and p.is_dir())
    if len(new) != 1:
        raise LocalKfpError(f"cannot tell which folder of {root} the run wrote")
    return LocalKfpRun(new[0], dict(compiled.tasks))
