"""The Katib ``Experiment`` (``kubeflow.org/v1beta1``) a study is on a cluster, as a plain dict.

``build`` writes the study's ``StudySpec`` in Katib's terms: ``objective`` (every metric's
``latest`` value counts, as the local backend takes a trial's last value), ``algorithm``
(``ALGORITHMS[..].katib``, the seed as ``random_state``), ``earlyStopping`` (``medianstop``),
``parameters`` (``dist.to_katib``), the trial counts, the ``StdOut`` metrics collector and the
trial template. What a trial runs travels inside the template, with no object store:

- a notebook: a ``batch/v1`` Job whose container runs ``python -m kfnb.tuning.trial_pod
  notebook``; the notebook (outputs cleared) is packed into ``KFNB_TRIAL_NOTEBOOK``;
- a training function: a ``TrainJob`` (``kfnb.training.manifests``), its nodes running
  ``python -m kfnb.tuning.trial_pod train`` around ``torchrun``.

The trial's parameters reach the container as environment variables ``KFNB_PARAM_<name>`` =
``${trialParameters.<name>}`` (Katib writes its values there), never on the command line:
Katib's StdOut collector joins the container's command into a shell line without quoting.
``KFNB_TRIAL`` (JSON) holds the space, so the pod types the values back as the study reads them
(``katib_values.typed``: Katib hands out strings), and the fixed parameters. What Katib's
webhook and suggestion services would refuse on the cluster (trial counts above
``maxTrialCount``, more trials than grid points, CMA-ES over choices, values that break its
template) is refused here (``check``), before anything is sent; options and the Experiment's
name are ``katib_options``'.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..backends import BackendError
from .algorithms import ALGORITHMS
from .katib_options import Options, experiment_name
from .katib_values import METRIC_NAME, NOTEBOOK_ENV, PARAM_ENV, TRIAL_ENV
from .space import Choice, Distribution, Int, SpaceError, _text, space_to_dict

if TYPE_CHECKING:
    from .spec import StudySpec
    from .target import Made

GROUP, VERSION = "kubeflow.org", "v1beta1"
EXPERIMENTS, TRIALS = "experiments", "trials"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
CONTAINER = "kfnb-trial"  # the primary container of a notebook trial's Job
POD_HOME = "/tmp/kfnb-home"  # the run store of a notebook trial's pod
DEFAULT_IMAGE = f"kfnb/runtime:{__version__.split('+')[0]}"  # as the kfp backend's steps
#: Katib's conditions for a Job and a TrainJob (its own defaults, written out: katib#2560)
JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
TRAINJOB_PRIMARY_LABELS = {
    "jobset.sigs.k8s.io/replicatedjob-name": "node",
    "batch.kubernetes.io/job-completion-index": "0",
}


# -- the experiment -----------------------------------------------------------------------------
def check(spec: StudySpec, made: Made) -> None:
    """What Katib cannot do with this study, as errors before anything is built."""
    if getattr(spec, "initial", None):
        raise BackendError(
            "Katib cannot start a study from given parameter sets (initial=...)",
            fix="drop initial, or tune with the local backend",
        )
    algo = ALGORITHMS[spec.algorithm]
    if algo.katib is None:
        raise BackendError(
            f"Katib has no {spec.algorithm} search",
            fix="use one of: " + ", ".join(n for n, a in ALGORITHMS.items() if a.katib),
        )
    if not METRIC_NAME.match(spec.objective):
        raise BackendError(
            f"Katib reads metrics as name=value lines; the objective {spec.objective!r} has "
            "characters its names cannot hold",
            fix="log the objective under a name of letters, digits, '_' and '-'",
        )
    if spec.seed is not None and spec.seed < 0:
        raise BackendError(f"Katib's random_state must be 0 or more, not {spec.seed}")
    numeric = [n for n, d in spec.space.items() if not isinstance(d, Choice)]
    if spec.algorithm == "cmaes" and (len(numeric) < 2 or len(numeric) < len(spec.space)):
        raise SpaceError(
            "Katib's CMA-ES searches two or more numeric parameters and no choices",
            fix="use tpe or random",
        )
    if spec.algorithm == "grid":
        for name, dist in spec.space.items():
            dist.grid(name)  # a float without a step cannot be gridded
    for name, dist in spec.space.items():
        if isinstance(dist, Choice):
            texts = [_text(v) for v in dist.values]
            if len(set(texts)) != len(texts):
                raise SpaceError(
                    f"Katib writes every value as text, and two choices of {name!r} read the "
                    f"same: {texts}",
                    fix="make the choices distinct as text",
                )
            bad = [t for t in texts if any(c in t for c in '"\\') or not t.isprintable()]
            if bad:
                raise SpaceError(
                    f"the choice {name!r} holds {bad[0]!r}: Katib pastes values into the trial's "
                    "JSON unescaped, so quotes, backslashes and control characters break it",
                    fix="choose values without them",
                )
    if made.pipeline is not None and made.notebook is None:
        raise BackendError(
            f"Katib trials run a notebook file; pipeline {made.name!r} has none",
            fix="pass the notebook's path",
        )


def trial_counts(spec: StudySpec, trials: int | None = None) -> dict[str, int]:
    """``maxTrialCount`` (at most the grid's size), ``parallelTrialCount`` and
    ``maxFailedTrialCount`` (Katib wants neither above ``maxTrialCount``)."""
    from .space import grid_size

    most = trials if trials is not None else spec.trials
    if spec.algorithm == "grid":
        most = min(most, grid_size(spec.space))  # Katib refuses more trials than grid points
    counts = {"maxTrialCount": most, "parallelTrialCount": min(spec.parallel, most)}
    if spec.max_failed is not None:
        counts["maxFailedTrialCount"] = min(spec.max_failed, most)
    return counts


def _objective(spec: StudySpec, made: Made) -> dict[str, Any]:
    extra = sorted(
        {m.name for m in made.pipeline.metrics}
        if made.pipeline is not None and made.pipeline.metrics
        else set()
    )
    extra = [m for m in extra if m != spec.objective and METRIC_NAME.match(m)]
    objective: dict[str, Any] = {"type": spec.direction, "objectiveMetricName": spec.objective}
    if extra:
        objective["additionalMetricNames"] = extra
    objective["metricStrategies"] = [
        {"name": name, "value": "latest"} for name in [spec.objective, *extra]
    ]
    return objective


def _trial_env(spec: StudySpec, notebook: str | None) -> dict[str, str]:
    info = {"space": space_to_dict(spec.space), "fixed": dict(spec.fixed), "notebook": notebook}
    env = {TRIAL_ENV: json.dumps(info, sort_keys=True)}
    env.update({f"{PARAM_ENV}{name}": f"${{trialParameters.{name}}}" for name in spec.space})
    return env


def _resources(opts: Options) -> dict[str, dict[str, str]]:
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    for key, value in (("cpu", opts.cpu), ("memory", opts.memory)):
        if value:
            limits[key] = requests[key] = value
    if opts.gpus:
        limits["nvidia.com/gpu"] = str(opts.gpus)
    out: dict[str, dict[str, str]] = {}
    if limits:
        out["limits"] = limits
    if requests:
        out["requests"] = requests
    return out


def _notebook_trial(
    spec: StudySpec, made: Made, opts: Options, labels: dict[str, str], folder: Path
) -> dict[str, Any]:
    """A ``batch/v1`` Job running the notebook as a pipeline in its pod."""
    import nbformat

    from ..training.manifests import MAX_PROGRAM_BYTES, pack

    source = Path(str(made.notebook))
    nb = nbformat.read(str(source), as_version=4)
    for cell in nb.cells:  # outputs do not travel: the trial makes its own
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    packed_dir = folder / "notebook"
    packed_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(packed_dir / source.name))
    try:
        packed = pack(packed_dir)
    except BackendError:
        raise BackendError(
            f"the notebook {source.name} is over the {MAX_PROGRAM_BYTES // 1024} KiB a trial "
            "can carry, even with its outputs cleared",
            fix="load data from files or a bucket the cluster reaches instead of keeping it in "
            "cells",
        ) from None
    env = {
        NOTEBOOK_ENV: packed,
        **_trial_env(spec, source.name),
        "KFNB_HOME": POD_HOME,
        "PYTHONUNBUFFERED": "1",
    }
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": opts.image or made.pipeline.image or DEFAULT_IMAGE,
        "command": ["python", "-m", "kfnb.tuning.trial_pod", "notebook"],
        "env": [{"name": k, "value": v} for k, v in env.items()],
    }
    resources = _resources(opts)
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"labels": dict(labels)},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    # an Istio sidecar would keep the pod, and so the trial, from ending
                    "annotations": {"sidecar.istio.io/inject": "false"},
                },
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


def _function_trial(
    spec: StudySpec,
    made: Made,
    opts: Options,
    *,
    run_id: str,
    namespace: str,
    folder: Path,
) -> dict[str, Any]:
    """A ``TrainJob`` whose nodes run the function; the trial's values replace its arguments."""
    from ..training import cluster
    from ..training.manifests import trainjob

    if not opts.image:
        raise BackendError(
            "a training function's trials need an image with Python, torch and kfnb",
            fix="pass options={'image': 'registry/name:tag'}",
        )
    program = made.program
    args = {n: p.default for n, p in program.parameters.items() if n not in program.required}
    args.update(spec.fixed)
    for name in spec.space:  # the trial sets them; a required one has no default to write
        args.pop(name, None)
    ask = cluster.Ask(
        image=opts.image,
        nodes=opts.nodes,
        procs=opts.procs_per_node,
        gpus=opts.gpus_per_node,
        cpu=opts.cpu,
        memory=opts.memory,
        env=_trial_env(spec, None),
    )
    shape = cluster.shape(
        replace(program, args=args), folder, run_id=run_id, namespace=namespace, ask=ask
    )
    job = trainjob(shape, container_command=["python", "-m", "kfnb.tuning.trial_pod", "train"])
    job["metadata"] = {"labels": job["metadata"]["labels"]}  # Katib names each trial's job
    return job


def build(
    spec: StudySpec,
    made: Made,
    opts: Options,
    *,
    name: str,
    namespace: str,
    run_id: str,
    folder: Path,
    trials: int | None = None,
) -> dict[str, Any]:
    """The Experiment ``name`` in ``namespace`` for study ``run_id`` ("" in a dry run); what
    trials need is written into ``folder``; ``trials``: the budget (default the spec's)."""
    from ..training.manifests import labels as kfnb_labels

    check(spec, made)
    labels = kfnb_labels(run_id, made.notebook)
    if made.pipeline is not None:
        trial_spec = _notebook_trial(spec, made, opts, labels, folder)
        template: dict[str, Any] = {
            "primaryContainerName": CONTAINER,
            "successCondition": JOB_SUCCESS,
            "failureCondition": JOB_FAILURE,
        }
    else:
        trial_spec = _function_trial(
            spec, made, opts, run_id=run_id, namespace=namespace, folder=folder / "program"
        )
        template = {
            "primaryContainerName": "node",
            "primaryPodLabels": dict(TRAINJOB_PRIMARY_LABELS),
            "successCondition": JOB_SUCCESS,
            "failureCondition": JOB_FAILURE,
        }
    template["trialParameters"] = [
        {"name": n, "reference": n, "description": f"{n}: {_describe(d)}"}
        for n, d in spec.space.items()
    ]
    template["trialSpec"] = trial_spec
    algorithm: dict[str, Any] = {"algorithmName": ALGORITHMS[spec.algorithm].katib}
    if spec.seed is not None:
        algorithm["algorithmSettings"] = [{"name": "random_state", "value": str(spec.seed)}]
    body: dict[str, Any] = {
        "objective": _objective(spec, made),
        "algorithm": algorithm,
        "parameters": [dist.to_katib(n) for n, dist in spec.space.items()],
        **trial_counts(spec, trials),
        "resumePolicy": opts.resume_policy,
        "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
        "trialTemplate": template,
    }
    if spec.prune is not None:
        body["earlyStopping"] = {
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": str(max(1, spec.prune.startup_trials))},
                # Katib counts reported values (>= 1); Optuna's warmup counts steps from 0
                {"name": "start_step", "value": str(spec.prune.warmup_steps + 1)},
            ],
        }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": body,
    }


def _describe(dist: Distribution) -> str:
    if isinstance(dist, Choice):
        return "one of " + ", ".join(_text(v) for v in dist.values)
    kind = "int" if isinstance(dist, Int) else "float"
    log = " (log scale)" if dist.log else ""
    return f"{kind} in [{_text(dist.low)}, {_text(dist.high)}]{log}"


def dry_run(
    spec: StudySpec, made: Made, opts: Options, namespace: str, run_id: str = ""
) -> dict[str, Any]:
    """The Experiment ``submit`` would create; nothing is recorded or sent."""
    name = opts.name or experiment_name(made, run_id)
    with tempfile.TemporaryDirectory(prefix="kfnb-katib-") as tmp:
        return build(spec, made, opts, name=name, namespace=namespace, run_id="", folder=Path(tmp))
