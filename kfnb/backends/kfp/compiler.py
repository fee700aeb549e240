"""Compile the pipeline IR to a Kubeflow Pipelines v2 pipeline with the official SDK (``kfp``).

Each step becomes a lightweight Python component whose function has the step's exact interface
and three lines of body (``component_source``): run the step notebook with papermill
(``kfnb.backends.kfp.pod.run_step``). The step notebook itself travels inside the component (a
gzipped, base64 literal in the function, so in the task's command): a pod needs no object store,
no download and no ``pip install``, only an image with kfnb (``images/runtime.Dockerfile``). The
same notebook always compiles to the same YAML. Interfaces:

- the pipeline parameters a step reads (with the prelude's) are KFP parameters of their types;
- a step that hands values on has an ``Output[Dataset]`` ``kfnb_data`` (a folder of marshalled
  files); a step that receives them has an ``Input[Dataset]`` ``kfnb_from_<upstream>`` per
  upstream step;
- every step has ``kfnb_metrics`` (``Output[Metrics]``: its pipeline metrics and what
  ``kfnb.log_metric`` recorded), ``kfnb_notebook`` (the executed notebook) and ``kfnb_html``
  (its rendering, shown by the KFP UI).

Step settings become task settings: image, CPU and memory (request = limit), an accelerator
(``nvidia.com/gpu``, or the vendor configured), env vars, retries, caching, and through
``kfp-kubernetes`` the timeout, pod labels and annotations, node selectors and tolerations.
"""

from __future__ import annotations

import base64
import gzip
import inspect
import io
import keyword
import linecache
import os
import re
import tarfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import __version__
from ...dag import GPU, Pipeline, Step
from ...errors import KfnbError, MissingDependencyError

DEFAULT_IMAGE = f"kfnb/runtime:{__version__.split('+')[0]}"
PARAM_TYPES: dict[str, type] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "dict": dict,
}
DATA = "kfnb_data"
METRICS = "kfnb_metrics"
NOTEBOOK = "kfnb_notebook"
HTML = "kfnb_html"
FROM = "kfnb_from_"
MAX_FILES_BYTES = 1024 * 1024  # data files, all copies: a spec must stay well below etcd's 1.5 MB
_NAME = re.compile(r"[^a-z0-9-]+")


class CompileError(KfnbError):
    """The pipeline cannot be expressed as a Kubeflow Pipelines pipeline as it is."""


@dataclass
class CompileOptions:
    """What the compiled pipeline uses where the notebook says nothing."""

    image: str | None = None  # base image of steps without an image: tag or notebook default
    accelerator: str = GPU  # the resource a step's GPU count asks for (e.g. amd.com/gpu)
    packages: Sequence[str] = ()  # pip-installed at pod start (none by default)
    cache: bool = True  # False: no step may take KFP's cached result


@dataclass
class Compiled:
    """A compiled pipeline: where its YAML is and how kfnb steps are named in it."""

    path: Path
    name: str
    tasks: dict[str, str] = field(default_factory=dict)  # kfnb step -> KFP task name
    parameters: dict[str, str] = field(default_factory=dict)  # pipeline parameter -> type


def compile_pipeline(
    pipeline: Pipeline, output: str | Path, options: CompileOptions | None = None
) -> Compiled:
    """Write ``pipeline`` as KFP v2 IR YAML to ``output``."""
    dsl, compiler = _kfp()
    opts = options or CompileOptions()
    _check_output(output)
    _check(pipeline, opts)
    name = pipeline_name(pipeline.name)
    compiled = Compiled(
        Path(output),
        name,
        parameters={
            p.name: _param_type(p.name, p.type).__name__ for p in pipeline.parameters.values()
        },
    )
    files = files_archive(pipeline)
    components = {s.name: _component(dsl, pipeline, s, opts, files) for s in pipeline.steps}

    def build(*args: Any) -> None:
        values = dict(zip(pipeline.parameters, args, strict=True))
        tasks: dict[str, Any] = {}
        for step in pipeline.toposort():
            kwargs = {p: values[p] for p in step_params(pipeline, step)}
            kwargs.update({input_name(u): tasks[u].outputs[DATA] for u in upstreams(step)})
            task = components[step.name](**kwargs)
            for before in step.after:
                if before not in upstreams(step):
                    task.after(tasks[before])
            configure(task, step, opts)
            tasks[step.name] = task
            compiled.tasks[step.name] = task.name

    build.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                p.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=p.default,
                annotation=_param_type(p.name, p.type),
            )
            for p in pipeline.parameters.values()
        ]
    )
    build.__name__ = name.replace("-", "_")
    graph = dsl.pipeline(name=name, description=pipeline.description or None)(build)
    try:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Python 3.9.*")
            compiler.Compiler().compile(graph, str(output))
    except OSError as err:  # a name too long, a read-only folder, a file where a folder goes
        raise CompileError(
            f"cannot write {_shown(output)}: {err.strerror or type(err).__name__}",
            fix="write it to a folder you can write to, e.g. -o pipeline.yaml",
        ) from err
    return compiled


def _shown(path: str | Path) -> str:
    text = repr(str(path))
    return text if len(text) <= 100 else f"{text[:100]}... ({len(text)} chars)"


def _check_output(output: str | Path) -> None:
    """The compiled file's path: a ``.yaml`` (or ``.yml``) file name KFP writes to."""
    text = str(output)
    if not text.strip() or "\x00" in text or not text.isprintable():
        raise CompileError(
            f"{_shown(output)} is not a usable file name", fix="write e.g. -o pipeline.yaml"
        )
    if Path(text).suffix not in (".yaml", ".yml") or os.path.isdir(text):
        raise CompileError(
            f"the compiled pipeline is YAML: {_shown(output)} does not end with .yaml",
            fix="write e.g. -o pipeline.yaml",
        )


def pipeline_name(name: str) -> str:
    """A KFP pipeline name (``^[a-z0-9][a-z0-9-]{0,127}$``) for a kfnb pipeline name."""
    cleaned = _NAME.sub("-", name.lower()).strip("-")[:128]
    return cleaned or "pipeline"


def step_params(pipeline: Pipeline, step: Step) -> list[str]:
    """The pipeline parameters a step receives, in pipeline order: those its code and the
    prelude read, and those it records as pipeline metrics (``Pipeline.step_parameters``)."""
    return pipeline.step_parameters(step)


def upstreams(step: Step) -> list[str]:
    """The steps whose values ``step`` receives, sorted."""
    return sorted(set(step.inputs.values()))


def input_name(upstream: str) -> str:
    return FROM + _identifier(upstream)


def component_source(pipeline: Pipeline, step: Step, files: str | None = None) -> tuple[str, str]:
    """``(function name, source)`` of the step's component function: its KFP interface, and the
    step notebook (``embed``) and the pipeline's data files (``files_archive``) as literals."""
    fn = _identifier(step.name)
    if keyword.iskeyword(fn):
        fn += "_"
    args = [
        f"{p}: {_param_type(p, pipeline.parameters[p].type).__name__}"
        for p in step_params(pipeline, step)
    ]
    args += [f"{input_name(u)}: Input[Dataset]" for u in upstreams(step)]
    if step.outputs:
        args.append(f"{DATA}: Output[Dataset]")
    args += [
        f"{METRICS}: Output[Metrics]",
        f"{NOTEBOOK}: Output[Artifact]",
        f"{HTML}: Output[HTML]",
    ]
    from ...materialize import step_notebook

    params = ", ".join(f"{p!r}: {p}" for p in step_params(pipeline, step))
    inputs = ", ".join(f"{u!r}: {input_name(u)}.path" for u in upstreams(step))
    metrics = [m.name for m in pipeline.metrics if m.step == step.name]
    source = "\n".join(
        [
            f"def {fn}(",
            *[f"    {a}," for a in args],
            "):",
            f'    """Step {step.name!r} of kfnb pipeline {pipeline.name!r}: its notebook, run with '
            'papermill."""',
            "    from kfnb.backends.kfp.pod import run_step",
            "",
            "    run_step(",
            f"        {embed(step_notebook(pipeline, step))!r},",
            f"        step={step.name!r},",
            f"        params={{{params}}},",
            f"        inputs={{{inputs}}},",
            f"        data={DATA}.path," if step.outputs else "        data=None,",
            f"        metrics={METRICS},",
            f"        metric_names={metrics!r},",
            f"        executed={NOTEBOOK}.path,",
            f"        html={HTML}.path,",
            *([f"        files={files!r},"] if files else []),
            "    )",
            "",
        ]
    )
    return fn, source


def configure(task: Any, step: Step, opts: CompileOptions) -> None:
    """Apply the step's settings to its KFP task."""
    task.set_display_name(step.name)
    task.set_caching_options(enable_caching=step.cache and opts.cache)
    if step.retries:
        task.set_retry(num_retries=step.retries)
    for key, value in step.resources.items():
        if key == "cpu":
            task.set_cpu_request(value).set_cpu_limit(value)
        elif key == "memory":
            task.set_memory_request(value).set_memory_limit(value)
        else:
            accelerator = opts.accelerator if key == GPU else key
            task.set_accelerator_type(accelerator).set_accelerator_limit(int(value))
    for name, value in step.env.items():
        task.set_env_variable(name, value)
    k8s = step.timeout or step.labels or step.annotations or step.node_selector or step.tolerations
    if not k8s:
        return
    kubernetes = _kfp_kubernetes()
    if step.timeout:
        kubernetes.set_timeout(task, max(1, round(step.timeout)))
    for key, value in step.labels.items():
        kubernetes.add_pod_label(task, key, value)
    for key, value in step.annotations.items():
        kubernetes.add_pod_annotation(task, key, value)
    for key, value in step.node_selector.items():
        kubernetes.add_node_selector(task, key, value)
    for t in step.tolerations:
        kubernetes.add_toleration(
            task, key=t.key, operator=t.operator, value=t.value, effect=t.effect
        )


def embed(notebook: Any) -> str:
    """A notebook as the text a component carries: JSON, gzip (no timestamp: the same notebook
    always compiles to the same component, so KFP's cache recognises it), base64."""
    import copy

    import nbformat

    notebook = copy.deepcopy(notebook)
    for index, cell in enumerate(notebook.cells):  # nbformat gives new cells random ids
        cell["id"] = f"kfnb-{index}"
    raw = nbformat.writes(notebook, version=4).encode()
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode("ascii")


def files_archive(pipeline: Pipeline) -> str | None:
    """The pipeline's data files (``kfnb.files`` globs, relative to the notebook's folder) as
    a reproducible tar.gz in base64, or None without any. Every step's component carries a copy,
    so the total is capped: what is larger belongs in the image or in object storage."""
    if not pipeline.files:
        return None
    if not pipeline.source:
        raise CompileError(
            "kfnb.files lists data files relative to the notebook's folder, but "
            "this pipeline has no notebook file",
            fix="compile the notebook file",
        )
    base = Path(pipeline.source).resolve().parent
    found: dict[str, Path] = {}
    for pattern in pipeline.files:
        matches = sorted(p for p in base.glob(pattern) if p.is_file())
        if not matches:
            raise CompileError(
                f"kfnb.files pattern {pattern!r} matches no file in {base}",
                fix="correct the pattern (relative to the notebook's folder)",
                where=pipeline.source,
            )
        for match in matches:
            try:
                found[match.resolve().relative_to(base).as_posix()] = match
            except ValueError:
                raise CompileError(
                    f"kfnb.files: {match} leads outside the notebook's folder (a symlink?)",
                    fix="copy the file next to the notebook",
                    where=pipeline.source,
                ) from None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in sorted(found.items()):
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    blob = gzip.compress(buffer.getvalue(), mtime=0)
    total = len(blob) * len(pipeline.steps)
    if total > MAX_FILES_BYTES:
        raise CompileError(
            f"kfnb.files: {len(found)} files, {len(blob) / 1024:.0f} KiB compressed, carried by "
            f"each of {len(pipeline.steps)} steps, make {total / 1024:.0f} KiB of pipeline spec "
            f"(at most {MAX_FILES_BYTES // 1024} KiB)",
            fix="put large data in the step image or in object storage and read it from there",
            where=pipeline.source,
        )
    return base64.b64encode(blob).decode("ascii")


def _component(
    dsl: Any, pipeline: Pipeline, step: Step, opts: CompileOptions, files: str | None
) -> Callable[..., Any]:
    fn, source = component_source(pipeline, step, files)
    func = _define(fn, source, f"<kfnb step {pipeline.name}/{step.name}>")
    image = step.image or pipeline.image or opts.image or DEFAULT_IMAGE
    return dsl.component(  # type: ignore[no-any-return]
        func, base_image=image, packages_to_install=list(opts.packages), install_kfp_package=False
    )


def _define(fn: str, source: str, filename: str) -> Callable[..., Any]:
    """Define function ``fn`` from ``source`` so that ``inspect.getsource`` finds its text (KFP
    ships a component's source, not its bytecode)."""
    from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {
        "Input": Input,
        "Output": Output,
        "Dataset": Dataset,
        "Metrics": Metrics,
        "Artifact": Artifact,
        "HTML": HTML,
    }
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)
    func: Callable[..., Any] = namespace[fn]
    func.__module__ = "kfnb.backends.kfp.compiled"
    return func


def _check(pipeline: Pipeline, opts: CompileOptions) -> None:
    """Refuse what KFP cannot express, naming the step and the fix."""
    from ...notebook.images import IMAGE_FIX, image_problem, short_ref

    for what, ref in (("--image", opts.image), ("the notebook's image", pipeline.image)):
        problem = image_problem(ref) if ref else None
        if problem is not None:
            raise CompileError(f"{what} {short_ref(ref)}: {problem}", fix=IMAGE_FIX)
    seen: dict[str, str] = {}
    for step in pipeline.steps:
        problem = image_problem(step.image) if step.image else None
        if problem is not None:
            raise CompileError(
                f"step {step.name!r} has the image {short_ref(step.image)}: {problem}",
                fix=IMAGE_FIX,
                where=f"step {step.name!r}",
            )
        ident = _identifier(step.name)
        if ident in seen:
            raise CompileError(
                f"steps {seen[ident]!r} and {step.name!r} get the same KFP "
                f"component name {ident!r}",
                fix="rename one of them",
                where=pipeline.source,
            )
        seen[ident] = step.name
        accelerators = [k for k in step.resources if k not in ("cpu", "memory")]
        for key in accelerators:
            if "/" not in key:
                raise CompileError(
                    f"step {step.name!r} asks for resource {key!r}, which a KFP task cannot "
                    "request (it takes cpu, memory and one accelerator such as nvidia.com/gpu)",
                    fix=f"remove limit:{key} or use an extended resource name",
                    where=f"step {step.name!r}",
                )
            if not step.resources[key].isdigit():
                raise CompileError(
                    f"step {step.name!r} asks for {step.resources[key]!r} of "
                    f"{key}; accelerators are counted in whole devices",
                    fix=f"use an integer, e.g. limit:{key}:1",
                    where=f"step {step.name!r}",
                )
        if len(accelerators) > 1:
            raise CompileError(
                f"step {step.name!r} asks for several accelerator types "
                f"({', '.join(accelerators)}); a KFP task takes one",
                fix="keep one of them",
                where=f"step {step.name!r}",
            )
    for p in pipeline.parameters.values():
        _param_type(p.name, p.type)


def _param_type(name: str, kind: str) -> type:
    try:
        return PARAM_TYPES[kind]
    except KeyError:
        raise CompileError(
            f"pipeline parameter {name!r} has no type KFP knows ({kind}: its default is None)",
            fix=f'give it a typed default or an annotation, e.g. `{name}: str = ""`',
        ) from None


def _identifier(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _kfp() -> tuple[Any, Any]:
    try:
        from kfp import compiler, dsl
    except ImportError as err:
        raise MissingDependencyError("kfp", "kfp", "compiling for Kubeflow Pipelines") from err
    return dsl, compiler


def _kfp_kubernetes() -> Any:
    try:
        from kfp import kubernetes
    except ImportError as err:
        raise MissingDependencyError(
            "kfp-kubernetes",
            "kfp",
            "pod labels, annotations, timeouts, node selectors and "
            "tolerations on Kubeflow Pipelines",
        ) from err
    return kubernetes


def load_spec(path: str | Path) -> tuple[Mapping[str, Any], Mapping[str, Any] | None]:
    """The compiled file's pipeline spec and platform spec (``None`` without one), parsed
    strictly: an unknown field or a wrong type raises ``CompileError``."""
    import yaml
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    if not docs or len(docs) > 2:
        raise CompileError(
            f"{path} holds {len(docs)} YAML documents; a compiled pipeline has "
            "a pipeline spec and at most a platform spec"
        )
    try:
        json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
        if len(docs) == 2:
            json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec())
    except json_format.ParseError as err:
        raise CompileError(f"{path} is not a valid KFP pipeline: {err}") from err
    return docs[0], docs[1] if len(docs) == 2 else None
