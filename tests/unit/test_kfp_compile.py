"""Compiling the pipeline IR to Kubeflow Pipelines v2 with the real ``kfp`` SDK: the YAML parses
strictly as a ``PipelineSpec`` (and ``PlatformSpec``), every step setting lands where KFP reads
it, the step notebook travels inside the spec, and a golden file pins the whole output.

Regenerate the golden file after an intended change with ``KFNB_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from nbbuild import build_notebook

from kfnb import Pipeline
from kfnb.backends.kfp.compiler import (
    CompileError,
    CompileOptions,
    compile_pipeline,
    load_spec,
)
from kfnb.errors import NotebookError
from kfnb.materialize import step_notebook

GOLDEN = Path(__file__).parent.parent / "fixtures" / "kfp" / "settings_pipeline.yaml"


def settings_pipeline() -> Pipeline:
    """Every per-step setting kfnb compiles, on a small fan-out pipeline."""
    nb = build_notebook(
        ("imports", "import math"),
        (
            "pipeline-parameters",
            "n = 4\nscale = 0.5\nlabel = 'run'\nflags = [1, 2]\nopts = {'a': 1}\nverbose = False",
        ),
        (
            [
                "step:make",
                "limit:cpu:2",
                "limit:memory:1Gi",
                "env:MODE:fast",
                "retries:2",
                "label:team:vision",
                "annotation:owner:alice",
            ],
            "values = list(range(n))",
        ),
        (
            [
                "step:gpu-train",
                "limit:nvidia.com/gpu:2",
                "node-selector:pool:gpu",
                "toleration:nvidia.com/gpu=present:NoSchedule",
                "timeout:90s",
                "image:trainer:1",
            ],
            "model = [v * scale for v in values]",
        ),
        (
            ["step:stats", "cache:off"],
            "mean = sum(values) / len(values)\nprint(label, flags, opts)",
        ),
        (["step:report", "prev:make"], "summary = (mean, len(model), verbose)"),
        ("pipeline-metrics", "print(mean)"),
        metadata={
            "kfnb": {"name": "Settings Demo", "description": "all the settings", "image": "base:1"}
        },
    )
    return Pipeline.from_nb(nb, "settings.ipynb")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any], Any]:
    out = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    result = compile_pipeline(settings_pipeline(), out, CompileOptions(image="fallback:1"))
    spec, platform = load_spec(out)
    return result, dict(spec), platform


def executor(spec: dict[str, Any], task: str) -> dict[str, Any]:
    label = spec["root"]["dag"]["tasks"][task]["componentRef"]["name"].replace("comp-", "exec-")
    return spec["deploymentSpec"]["executors"][label]["container"]  # type: ignore[no-any-return]


def embedded_notebook(container: dict[str, Any]) -> nbformat.NotebookNode:
    source = container["command"][-1]
    blob = re.search(r"run_step\(\n        '([A-Za-z0-9+/=]+)',", source)
    assert blob, source[:500]
    return nbformat.reads(gzip.decompress(base64.b64decode(blob.group(1))).decode(), 4)


def test_the_compiled_file_parses_strictly_and_round_trips(compiled: Any, tmp_path: Path) -> None:
    result, spec, platform = compiled
    from kfp import components

    component = components.load_component_from_file(str(result.path))
    assert component.name == "settings-demo" == result.name
    assert set(component.component_spec.inputs) == {
        "n",
        "scale",
        "label",
        "flags",
        "opts",
        "verbose",
    }
    assert platform is not None
    # an unknown field is refused: the strict parse is not a formality
    broken = dict(spec, surprise=1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(broken))
    with pytest.raises(CompileError, match="surprise"):
        load_spec(bad)


def test_the_dag_follows_the_variable_flow(compiled: Any) -> None:
    result, spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    assert result.tasks == {
        "make": "make",
        "gpu-train": "gpu-train",
        "stats": "stats",
        "report": "report",
    }
    assert set(tasks) == {"make", "gpu-train", "stats", "report"}
    assert "dependentTasks" not in tasks["make"]
    assert tasks["gpu-train"]["dependentTasks"] == ["make"]
    assert tasks["stats"]["dependentTasks"] == ["make"]
    assert sorted(tasks["report"]["dependentTasks"]) == ["gpu-train", "make", "stats"]
    # values travel as Dataset artifacts from the providing task
    inputs = tasks["report"]["inputs"]["artifacts"]
    assert inputs["kfnb_from_gpu_train"]["taskOutputArtifact"] == {
        "outputArtifactKey": "kfnb_data",
        "producerTask": "gpu-train",
    }
    assert inputs["kfnb_from_stats"]["taskOutputArtifact"]["producerTask"] == "stats"


def test_parameters_are_typed_and_each_step_gets_what_it_reads(compiled: Any) -> None:
    result, spec, _ = compiled
    assert result.parameters == {
        "n": "int",
        "scale": "float",
        "label": "str",
        "flags": "list",
        "opts": "dict",
        "verbose": "bool",
    }
    root = spec["root"]["inputDefinitions"]["parameters"]
    assert {k: v["parameterType"] for k, v in root.items()} == {
        "n": "NUMBER_INTEGER",
        "scale": "NUMBER_DOUBLE",
        "label": "STRING",
        "flags": "LIST",
        "opts": "STRUCT",
        "verbose": "BOOLEAN",
    }
    assert root["n"]["defaultValue"] == 4 and root["opts"]["defaultValue"] == {"a": 1}
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks["make"]["inputs"]["parameters"]) == {"n"}
    assert set(tasks["stats"]["inputs"]["parameters"]) == {"label", "flags", "opts"}
    assert set(tasks["report"]["inputs"]["parameters"]) == {"verbose"}
    report = spec["components"]["comp-report"]["outputDefinitions"]["artifacts"]
    assert "kfnb_data" not in report  # nothing downstream reads what it computes
    comp = spec["components"]["comp-gpu-train"]
    assert set(comp["outputDefinitions"]["artifacts"]) == {
        "kfnb_data",
        "kfnb_metrics",
        "kfnb_notebook",
        "kfnb_html",
    }
    kinds = {
        k: v["artifactType"]["schemaTitle"]
        for k, v in comp["outputDefinitions"]["artifacts"].items()
    }
    assert kinds == {
        "kfnb_data": "system.Dataset",
        "kfnb_metrics": "system.Metrics",
        "kfnb_notebook": "system.Artifact",
        "kfnb_html": "system.HTML",
    }


def test_step_settings_become_task_settings(compiled: Any) -> None:
    _, spec, platform = compiled
    tasks = spec["root"]["dag"]["tasks"]
    make = executor(spec, "make")
    assert make["resources"]["cpuLimit"] == 2.0 and make["resources"]["cpuRequest"] == 2.0
    assert make["resources"]["resourceMemoryLimit"] == "1Gi"
    assert make["env"] == [{"name": "MODE", "value": "fast"}]
    assert make["image"] == "base:1"  # the notebook's default image
    assert tasks["make"]["retryPolicy"]["maxRetryCount"] == 2
    gpu = executor(spec, "gpu-train")
    assert gpu["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert gpu["resources"]["accelerator"]["resourceCount"] == "2"
    assert gpu["image"] == "trainer:1"  # the step's own image tag wins
    assert tasks["stats"]["cachingOptions"] == {}  # cache:off
    assert tasks["make"]["cachingOptions"] == {"enableCache": True}
    assert tasks["gpu-train"]["taskInfo"]["name"] == "gpu-train"
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert k8s["exec-make"]["podMetadata"] == {
        "labels": {"team": "vision"},
        "annotations": {"owner": "alice"},
    }
    assert k8s["exec-gpu-train"]["nodeSelector"] == {"labels": {"pool": "gpu"}}
    assert k8s["exec-gpu-train"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    assert k8s["exec-gpu-train"]["activeDeadlineSeconds"] == "90"


def test_the_step_notebook_travels_inside_the_spec(compiled: Any) -> None:
    _, spec, _ = compiled
    pipeline = settings_pipeline()
    for step in pipeline.steps:
        container = executor(spec, step.name)
        carried = embedded_notebook(container)
        expected = step_notebook(pipeline, step)
        assert [c.source for c in carried.cells] == [c.source for c in expected.cells]
        source = container["command"][-1]
        assert "pip install" not in " ".join(container["command"])  # nothing installed at start
        assert "from kfnb.backends.kfp.pod import run_step" in source


def test_compiling_is_reproducible_and_options_apply(tmp_path: Path) -> None:
    pipeline = settings_pipeline()
    a = compile_pipeline(pipeline, tmp_path / "a.yaml")
    b = compile_pipeline(pipeline, tmp_path / "b.yaml")
    assert a.path.read_bytes() == b.path.read_bytes()  # KFP's cache sees the same components
    c = compile_pipeline(
        pipeline,
        tmp_path / "c.yaml",
        CompileOptions(accelerator="amd.com/gpu", cache=False, packages=("rich==13.7.1",)),
    )
    spec, _ = load_spec(c.path)
    gpu = executor(dict(spec), "gpu-train")
    assert gpu["resources"]["accelerator"]["resourceType"] == "amd.com/gpu"
    assert all(t["cachingOptions"] == {} for t in spec["root"]["dag"]["tasks"].values())
    assert "rich==13.7.1" in " ".join(gpu["command"])


def test_golden_file() -> None:
    """The whole compiled YAML, pinned: a change in what kfnb emits shows up in review."""
    out = GOLDEN.with_suffix(".new.yaml")
    try:
        compile_pipeline(settings_pipeline(), out, CompileOptions(image="fallback:1"))
        produced = out.read_text()
    finally:
        out.unlink(missing_ok=True)
    if os.environ.get("KFNB_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(produced)
    assert GOLDEN.exists(), "run with KFNB_UPDATE_GOLDEN=1 once to write the golden file"
    assert produced == GOLDEN.read_text()


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (
            [(["step:a", "limit:nvidia.com/gpu:1", "limit:amd.com/gpu:1"], "x = 1")],
            r"several accelerator types \(nvidia.com/gpu, amd.com/gpu\).*keep one",
        ),
        (
            [(["step:a", "limit:ephemeral-storage:1Gi"], "x = 1")],
            r"resource 'ephemeral-storage', which a KFP task cannot request",
        ),
        ([(["step:a", "limit:google.com/tpu:500m"], "x = 1")], r"whole devices"),
        (
            [("pipeline-parameters", "token = None"), ("step:a", "x = token")],
            r"parameter 'token' has no type KFP knows.*`token: str = \"\"`",
        ),
        (
            [("step:a-b", "x = 1"), ("step:a_b", "y = 2")],
            r"steps 'a-b' and 'a_b' get the same KFP component name",
        ),
    ],
)
def test_what_kfp_cannot_express_is_refused_with_the_fix(
    cells: list[Any], message: str, tmp_path: Path
) -> None:
    pipeline = Pipeline.from_nb(build_notebook(*cells), "bad.ipynb")
    with pytest.raises(CompileError, match=message):
        compile_pipeline(pipeline, tmp_path / "x.yaml")
    assert not (tmp_path / "x.yaml").exists()


def test_the_cli_compiles_and_names_gpu_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfnb.cli import main

    path = tmp_path / "settings.ipynb"
    nbformat.write(
        build_notebook(
            ("pipeline-parameters", "n = 2"),
            ("step:a", "x = n"),
            (["step:b", "limit:gpu:1"], "y = x"),
        ),
        path,
    )
    out = tmp_path / "p.yaml"
    assert main(["compile", str(path), "-o", str(out), "--image", "img:2"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "2 steps (a -> b)" in printed
    assert "b: nvidia.com/gpu=1" in printed and "parameters: n: int" in printed
    spec, _ = load_spec(out)
    assert json.dumps(dict(spec)).count('"image": "img:2"') == 2
    assert main(["compile", str(tmp_path / "missing.ipynb"), "-o", str(out)]) == 2


def test_the_kfp_backend_costs_nothing_until_used() -> None:
    """Registering the kfp backend (every `kfnb run`) imports neither the kfp SDK nor nbformat."""
    import subprocess
    import sys

    code = (
        "import sys, kfnb.api, kfnb.backends; assert 'kfp' in kfnb.backends.backends(); "
        "print(sorted(m for m in ('kfp', 'nbformat', 'kfp_server_api') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def files_notebook(tmp_path: Path, files: Any) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "a.csv").write_text("x\n1\n2\n")
    (tmp_path / "data" / "b.csv").write_text("x\n3\n")
    (tmp_path / "notes.txt").write_text("not shipped")
    path = tmp_path / "reads.ipynb"
    nbformat.write(
        build_notebook(
            ("step:load", "text = open('data/a.csv').read()"),
            ("step:use", "n = len(text)"),
            metadata={"kfnb": {"files": files}},
        ),
        path,
    )
    return path


def test_data_files_travel_with_every_step(tmp_path: Path) -> None:
    import io
    import tarfile

    from kfnb.backends.kfp.compiler import files_archive

    pipeline = Pipeline.from_notebook(files_notebook(tmp_path, ["data/*.csv"]))
    assert pipeline.files == ["data/*.csv"]
    archive = files_archive(pipeline)
    assert archive is not None
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(archive)))) as tar:
        assert sorted(tar.getnames()) == ["data/a.csv", "data/b.csv"]
        member = tar.extractfile("data/b.csv")
        assert member is not None and member.read() == b"x\n3\n"
    compiled = compile_pipeline(pipeline, tmp_path / "p.yaml")
    spec, _ = load_spec(compiled.path)
    for step in ("load", "use"):
        assert f"files={archive!r}" in executor(dict(spec), step)["command"][-1]
    assert files_archive(pipeline) == archive  # reproducible


@pytest.mark.parametrize(
    ("files", "error", "message"),
    [
        (["data/*.parquet"], CompileError, r"'data/\*.parquet' matches no file"),
        (["../secrets.txt"], NotebookError, r"leaves the notebook's folder"),
        ("data/a.csv", None, None),  # one pattern as a string is fine
        ([3], NotebookError, r"must be a list of file patterns"),
    ],
)
def test_data_file_patterns_are_checked(
    tmp_path: Path, files: Any, error: Any, message: str | None
) -> None:
    path = files_notebook(tmp_path, files)
    if error is None:
        compile_pipeline(Pipeline.from_notebook(path), tmp_path / "ok.yaml")
        return
    with pytest.raises(error, match=message):
        compile_pipeline(Pipeline.from_notebook(path), tmp_path / "x.yaml")


def test_data_files_too_large_for_a_spec_are_refused(tmp_path: Path) -> None:
    path = files_notebook(tmp_path, ["data/*.bin"])
    (tmp_path / "data" / "big.bin").write_bytes(os.urandom(600 * 1024))
    with pytest.raises(
        CompileError,
        match=r"each of 2 steps.*Fix: put large data in the step "
        r"image or in object storage",
    ):
        compile_pipeline(Pipeline.from_notebook(path), tmp_path / "x.yaml")
