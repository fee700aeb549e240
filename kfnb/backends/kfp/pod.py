"""What runs inside a step's pod (and under ``kfp.local``): one step notebook, with papermill.

The compiled component of a step is a few lines (see ``compiler.component_source``) that call
``run_step`` with the step notebook it carries (gzipped, base64), the step's parameter values,
and the paths KFP gives its artifacts:

- each upstream step's ``kfnb_data`` artifact (a folder of marshalled values) is linked into a
  private data folder as ``<data>/<upstream step>``, where the step notebook loads its inputs;
- the step saves its outputs into ``<data>/<step>``, which is its own ``kfnb_data`` artifact;
- values of ``pipeline-metrics`` the step provides and what ``kfnb.log_metric`` records go to
  the ``kfnb_metrics`` artifact (last value of each name), which the KFP UI shows;
- the executed notebook is the ``kfnb_notebook`` artifact and its HTML rendering ``kfnb_html``.

A failing cell fails the task with papermill's error, after the executed notebook (with the
traceback in it) and its HTML are written. Only the image's Python, papermill, ipykernel and
kfnb are needed: nothing is downloaded.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import math
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ...tracking.context import METRICS_FILE_ENV, STEP_ENV

KERNEL = "python3"  # the image's own Python; the notebook's kernelspec name means nothing there


class MetricsArtifact(Protocol):
    def log_metric(self, metric: str, value: float) -> None: ...


def run_step(
    notebook: str,
    *,
    step: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, str],
    data: str | None,
    metrics: MetricsArtifact,
    metric_names: Sequence[str],
    executed: str,
    html: str,
    files: str | None = None,
) -> None:
    """Run the step notebook (``notebook``: as ``compiler.embed`` wrote it) and fill the step's
    output artifacts. The notebook runs in a fresh folder holding the pipeline's data files
    (``files``: ``compiler.files_archive``), so relative paths resolve as next to the notebook."""
    import papermill

    from ...materialize import DATA_DIR_PARAM

    work = Path(tempfile.mkdtemp(prefix=f"kfnb-{step}-"))
    cwd = work / "cwd"
    cwd.mkdir()
    if files:
        unpack(files, cwd)
    source = work / f"{step}.in.ipynb"
    source.write_bytes(gzip.decompress(base64.b64decode(notebook)))
    data_dir = work / "data"
    data_dir.mkdir()
    for upstream, path in inputs.items():
        (data_dir / upstream).symlink_to(Path(path).resolve(), target_is_directory=True)
    if data is not None:
        Path(data).mkdir(parents=True, exist_ok=True)
        (data_dir / step).symlink_to(Path(data).resolve(), target_is_directory=True)
    logged = work / "metrics.jsonl"
    os.environ[METRICS_FILE_ENV] = str(logged)
    os.environ[STEP_ENV] = step
    out = work / f"{step}.ipynb"  # papermill wants the extension KFP's artifact paths lack
    try:
        papermill.execute_notebook(
            str(source),
            str(out),
            parameters={**params, DATA_DIR_PARAM: str(data_dir)},
            kernel_name=KERNEL,
            log_output=True,
            progress_bar=False,
            cwd=str(cwd),
        )
    finally:
        if out.exists():
            Path(executed).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out, executed)
            write_html(out, html)
    for name, value in collect_metrics(logged, data_dir / step, step, metric_names).items():
        metrics.log_metric(name, value)
    shutil.rmtree(work, ignore_errors=True)


def unpack(files: str, folder: Path) -> None:
    """Extract a ``files_archive`` into ``folder`` (regular files only, nothing outside it)."""
    archive = io.BytesIO(gzip.decompress(base64.b64decode(files)))
    with tarfile.open(fileobj=archive, mode="r:") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        for member in members:
            target = (folder / member.name).resolve()
            if folder.resolve() not in target.parents:
                raise ValueError(f"kfnb: file {member.name!r} would land outside {folder}")
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12
        tar.extractall(folder, members=members, **safe)  # type: ignore[arg-type]


def collect_metrics(
    logged: Path, outputs: Path, step: str, names: Sequence[str]
) -> dict[str, float]:
    """The last value of each metric ``kfnb.log_metric`` recorded, then the step's pipeline
    metrics (loaded from its outputs). KFP metrics are finite numbers: others are reported."""
    values: dict[str, float] = {}
    if logged.exists():
        for line in logged.read_text().splitlines():
            record = json.loads(line)
            if "metric" in record:
                values[record["metric"]] = record["value"]
    if names:
        from ... import marshal

        for name in names:
            values[name] = float(marshal.load(outputs, name, step=step))  # type: ignore[arg-type]
    finite = {}
    for name, value in values.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            finite[name] = float(value)
        else:
            print(
                f"kfnb: metric {name!r} = {value!r} is not a finite number; KFP cannot show it",
                file=sys.stderr,
            )
    return finite


def write_html(executed: Path, html: str) -> None:
    """Render the executed notebook as HTML for the KFP UI."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    Path(html).parent.mkdir(parents=True, exist_ok=True)
    Path(html).write_text(body, encoding="utf-8")
