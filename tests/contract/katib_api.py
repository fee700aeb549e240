"""Katib's API as a cluster enforces it, for the loopback fake (k8s_fake.py) and the tests:
the official schema (tests/fixtures/katib: Katib v0.19.0's swagger, made strict) plus the rules
of Katib's validating webhook and suggestion services that an Experiment meets on a cluster
(ported from ``pkg/webhook/v1beta1/experiment/validator/validator.go``,
``pkg/suggestion/v1beta1/{hyperopt,optuna,goptuna}`` and ``pkg/earlystopping/.../medianstop``
at v0.19.0).

The swagger refers to Kubernetes definitions it lacks (``v1.ObjectMeta``...): they are made here
from the official ``kubernetes`` client's models (``attribute_map``/``openapi_types``), strict as
well. A trial template's ``batch/v1`` Job is checked against the client's ``V1Job`` (Katib's
webhook converts it to a ``batchv1.Job`` and refuses what does not convert), a ``TrainJob``
against its CRD. ``experiment_problems(body, old)`` returns what a cluster would refuse
(``old``: the stored object, for an update), ``trial_problems`` checks a test's Trial.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

SWAGGER = Path(__file__).resolve().parents[1] / "fixtures" / "katib" / "katib_v1beta1.swagger.json"

#: katib-config's suggestion algorithms (manifests/v1beta1/installs/katib-standalone)
ALGORITHMS = {
    "random",
    "tpe",
    "grid",
    "hyperband",
    "bayesianoptimization",
    "cmaes",
    "sobol",
    "multivariate-tpe",
    "enas",
    "darts",
    "pbt",
}
COLLECTORS = {"StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "None", "Push"}
PARAMETER_TYPES = {"int", "double", "categorical", "discrete", ""}
DISTRIBUTIONS = {"uniform", "logUniform", "normal", "logNormal", ""}
RESUME_POLICIES = {"", "Never", "LongRunning", "FromVolume"}
PARAM = re.compile(r"\$\{trialParameters\..+?\}")
META = re.compile(r"\$\{trialSpec\.(.+?)\}")


def strict(schema: Any) -> Any:
    """An object schema with ``properties`` refuses other keys (the API server would drop
    them silently; the tests want to know)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def _model(type_name: str, defs: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema of a ``kubernetes`` client model type (strict), into ``defs``."""
    import kubernetes.client

    if type_name.startswith("list["):
        return {"type": "array", "items": _model(type_name[5:-1], defs)}
    if type_name.startswith("dict("):
        return {
            "type": "object",
            "additionalProperties": _model(type_name.split(",", 1)[1][:-1].strip(), defs),
        }
    plain = {
        "str": {"type": "string"},
        "int": {"type": "integer"},
        "float": {"type": "number"},
        "bool": {"type": "boolean"},
        "datetime": {"type": "string"},
        "date": {"type": "string"},
        "object": {},  # IntOrString, RawExtension...
    }
    if type_name in plain:
        return plain[type_name]
    key = f"k8s.{type_name}"
    if key not in defs:
        defs[key] = {}  # for recursive types
        cls = getattr(kubernetes.client, type_name)
        props = {cls.attribute_map[a]: _model(t, defs) for a, t in cls.openapi_types.items()}
        defs[key] = {"type": "object", "properties": props, "additionalProperties": False}
    return {"$ref": f"#/definitions/{key}"}


@lru_cache(maxsize=1)
def definitions() -> dict[str, Any]:
    """The swagger's definitions (strict) plus the Kubernetes ones it refers to."""
    defs: dict[str, Any] = strict(json.loads(SWAGGER.read_text())["definitions"])
    kube: dict[str, Any] = {}
    defs.update(
        {
            "v1.ObjectMeta": _model("V1ObjectMeta", kube),
            "v1.ListMeta": _model("V1ListMeta", kube),
            "v1.Container": _model("V1Container", kube),
            "v1.HTTPGetAction": _model("V1HTTPGetAction", kube),
            "v1.Time": {"type": "string", "format": "date-time"},
            "v1.unstructured.Unstructured": {"type": "object"},  # checked by its own schema
            "k8s.job": _model("V1Job", kube),
        }
    )
    defs.update(kube)
    return defs


def schema_problem(body: Any, definition: str) -> str | None:
    """Where ``body`` breaks the schema of ``definition`` (e.g. ``v1beta1.Experiment``)."""
    schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions()}
    try:
        jsonschema.validate(body, schema)
    except jsonschema.ValidationError as err:
        where = ".".join(str(p) for p in err.absolute_path) or "(root)"
        return f"{where}: {err.message}"
    return None


def trial_problems(trial: dict[str, Any]) -> list[str]:
    found = schema_problem(trial, ".v1beta1.Trial")
    return [found] if found else []


# -- the webhook ------------------------------------------------------------------------------
def _completed(obj: dict[str, Any]) -> tuple[bool, bool]:
    """(completed, restartable) of a stored Experiment."""
    true = {
        c["type"]: c
        for c in (obj.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }
    completed = "Succeeded" in true or "Failed" in true
    policy = (obj.get("spec") or {}).get("resumePolicy")
    restartable = (
        "Succeeded" in true
        and true["Succeeded"].get("reason") == "ExperimentMaxTrialsReached"
        and policy in ("LongRunning", "FromVolume")
    )
    return completed, restartable


def experiment_problems(exp: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """What Katib refuses in ``exp`` (``old``: the Experiment it updates)."""
    found = schema_problem(exp, "v1beta1.Experiment")
    if found:
        return [found]
    problems: list[str] = []
    name = (exp.get("metadata") or {}).get("name") or ""
    if not re.match(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", name) or len(name) > 40:
        problems.append(f"metadata.name: {name!r} is not a valid experiment name (<= 40 chars)")
    spec = exp.get("spec") or {}
    most, parallel, failed = (
        spec.get("maxTrialCount"),
        spec.get("parallelTrialCount"),
        spec.get("maxFailedTrialCount"),
    )
    if most is not None and most <= 0:
        problems.append("spec.maxTrialCount: must be greater than 0")
    if parallel is not None and parallel <= 0:
        problems.append("spec.parallelTrialCount: must be greater than 0")
    if failed is not None and failed < 0:
        problems.append("spec.maxFailedTrialCount: should not be less than 0")
    if failed is not None and most is not None and failed > most:
        problems.append("spec.maxFailedTrialCount: should be less than or equal to maxTrialCount")
    if parallel is not None and most is not None and parallel > most:
        problems.append("spec.parallelTrialCount: should be less than or equal to maxTrialCount")
    if old is not None:
        if spec != old.get("spec"):
            completed, restartable = _completed(old)
            if completed and not restartable:
                problems.append(
                    "spec.resumePolicy: Experiment can be restarted if it is in succeeded state "
                    "by reaching max trials and spec.resumePolicy = LongRunning or FromVolume"
                )
            had = int((old.get("status") or {}).get("trials") or 0)
            if most is not None and most <= had:
                problems.append("spec.maxTrialCount: must be greater than status.trials count")
        editable = ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")
        rest = {k: v for k, v in spec.items() if k not in editable}
        old_rest = {k: v for k, v in (old.get("spec") or {}).items() if k not in editable}
        if rest != old_rest:
            problems.append(
                "spec: only spec.parallelTrialCount, spec.maxTrialCount and "
                "spec.maxFailedTrialCount are editable"
            )
    problems += _objective(spec.get("objective"))
    problems += _algorithm(spec)
    problems += _early_stopping(spec.get("earlyStopping"))
    if spec.get("resumePolicy", "") not in RESUME_POLICIES:
        problems.append(f"spec.resumePolicy: invalid ResumePolicyType {spec['resumePolicy']!r}")
    problems += _parameters(spec.get("parameters") or [])
    problems += _template(spec)
    kind = ((spec.get("metricsCollectorSpec") or {}).get("collector") or {}).get("kind", "StdOut")
    if kind not in COLLECTORS:
        problems.append(f"spec.metricsCollectorSpec.collector.kind: invalid kind {kind!r}")
    return problems


def _objective(obj: dict[str, Any] | None) -> list[str]:
    if obj is None:
        return ["spec.objective: must be specified"]
    out = []
    if obj.get("type") not in ("minimize", "maximize"):
        out.append(f"spec.objective.type: {obj.get('type')!r} must be minimize or maximize")
    if not obj.get("objectiveMetricName"):
        out.append("spec.objective.objectiveMetricName: must be specified")
    if obj.get("objectiveMetricName") in (obj.get("additionalMetricNames") or []):
        out.append("spec.objective.additionalMetricNames: should not contain the objective")
    return out


def _algorithm(spec: dict[str, Any]) -> list[str]:
    algo = spec.get("algorithm")
    if not algo or not algo.get("algorithmName"):
        return ["spec.algorithm.algorithmName: must be specified"]
    name = algo["algorithmName"]
    if name not in ALGORITHMS:
        return [f"spec.algorithm.algorithmName: unable to get Suggestion config data for {name}"]
    out = []
    for setting in algo.get("algorithmSettings") or []:  # the suggestion services' checks
        if setting.get("name") != "random_state":
            out.append(f"unknown setting {setting.get('name')} for algorithm {name}")
        elif not str(setting.get("value", "")).isdigit():
            out.append("random_state should be great or equal than zero")
    params = spec.get("parameters") or []
    if name == "cmaes" and sum(p.get("parameterType") in ("double", "int") for p in params) < 2:
        out.append("CMA-ES only supports two or more dimensional continuous search space.")
    if name == "grid":
        size = 1
        for p in params:
            space = p.get("feasibleSpace") or {}
            if p.get("parameterType") == "int":
                size *= len(
                    range(int(space["min"]), int(space["max"]) + 1, int(space.get("step") or 1))
                )
            elif p.get("parameterType") == "double":
                if not space.get("step"):
                    return [*out, f"Param {p['name']} step is nil; grid needs a step"]
                lo, hi, step = float(space["min"]), float(space["max"]), float(space["step"])
                size *= math.floor((hi - lo) / step + 1e-9) + 1
            else:
                size *= len(space.get("list") or [])
        if (spec.get("maxTrialCount") or 0) > size:
            out.append(
                f"Max Trial Count: {spec.get('maxTrialCount')} > all possible search "
                f"combinations: {size}"
            )
    return out


def _early_stopping(es: dict[str, Any] | None) -> list[str]:
    if es is None:
        return []
    if es.get("algorithmName") != "medianstop":
        return [f"spec.earlyStopping.algorithmName: unknown {es.get('algorithmName')!r}"]
    out = []
    for setting in es.get("algorithmSettings") or []:
        value = int(setting.get("value", "0"))
        if setting.get("name") == "min_trials_required" and value <= 0:
            out.append("min_trials_required must be greater than zero (>0)")
        elif setting.get("name") == "start_step" and value < 1:
            out.append("start_step must be greater or equal than one (>=1)")
        elif setting.get("name") not in ("min_trials_required", "start_step"):
            out.append(f"unknown setting {setting.get('name')} for algorithm medianstop")
    return out


def _parameters(params: list[dict[str, Any]]) -> list[str]:
    if not params:
        return ["spec: spec.parameters or spec.nasConfig must be specified"]
    out = []
    for i, p in enumerate(params):
        kind, space = p.get("parameterType", ""), p.get("feasibleSpace") or {}
        where = f"spec.parameters[{i}]"
        if kind not in PARAMETER_TYPES:
            out.append(f"{where}.parameterType: {kind} is not supported")
        if space.get("distribution", "") not in DISTRIBUTIONS:
            out.append(
                f"{where}.feasibleSpace.distribution: {space['distribution']} is not supported"
            )
        if not space:
            out.append(f"{where}.feasibleSpace: must be specified")
        elif kind in ("double", "int"):
            if space.get("list"):
                out.append(f"{where}.feasibleSpace.list: not supported for {kind}")
            if not space.get("min") or not space.get("max"):
                out.append(f"{where}.feasibleSpace.max or min must be specified for {kind}")
        elif kind in ("categorical", "discrete") and any(
            space.get(k) for k in ("min", "max", "step")
        ):
            out.append(f"{where}.feasibleSpace: .max, .min and .step not supported for {kind}")
    return out


def _template(spec: dict[str, Any]) -> list[str]:
    t = spec.get("trialTemplate")
    if t is None:
        return ["spec.trialTemplate: must be specified"]
    out = []
    if not t.get("primaryContainerName"):
        out.append("spec.trialTemplate.primaryContainerName: must be specified")
    if not t.get("successCondition") or not t.get("failureCondition"):
        out.append("spec.trialTemplate: successCondition and failureCondition must be specified")
    if t.get("trialParameters") is None:
        return [*out, "spec.trialTemplate.trialParameters: must be specified"]
    if t.get("trialSpec") is None:
        return [*out, "spec.trialTemplate.trialSpec: must be specified"]
    text = json.dumps(t["trialSpec"])
    names = {p.get("name") for p in spec.get("parameters") or []}
    seen_names: set[str] = set()
    seen_refs: set[str] = set()
    for i, p in enumerate(t["trialParameters"]):
        name, ref = p.get("name") or "", p.get("reference") or ""
        if not name or not ref or "{" in name or "}" in name:
            out.append(
                f"spec.trialTemplate.trialParameters[{i}]: name and reference must be specified"
            )
            continue
        if name in seen_names or ref in seen_refs:
            out.append(f"spec.trialTemplate.trialParameters[{i}]: duplicated")
            continue
        seen_names.add(name)
        seen_refs.add(ref)
        if not META.fullmatch(ref) and ref not in names:
            out.append(
                f"spec.trialTemplate.trialParameters[{i}].reference: {ref} not in spec.parameters"
            )
        placeholder = f"${{trialParameters.{name}}}"
        if placeholder not in text:
            return [
                *out,
                f"parameter name: {name} in spec.trialParameters not found in spec.trialTemplate",
            ]
        text = text.replace(placeholder, "test-value")
    left = PARAM.findall(text)
    if left:
        out.append(f"parameters: {left} in spec.trialTemplate not found in spec.trialParameters")
    run_spec = json.loads(text)
    meta = run_spec.get("metadata") or {}
    if meta.get("name") or meta.get("namespace"):
        out.append("metadata.name and metadata.namespace in spec.trialTemplate must be omitted")
    if not run_spec.get("apiVersion") or not run_spec.get("kind"):
        out.append("APIVersion and Kind in spec.trialTemplate must be specified")
    if (run_spec.get("apiVersion"), run_spec.get("kind")) == ("batch/v1", "Job"):
        found = schema_problem(run_spec, "k8s.job")
        if found:
            out.append(f"invalid spec.trialTemplate: unable to convert to Job: {found}")
        containers = (((run_spec.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or []
        if t.get("primaryContainerName") not in [c.get("name") for c in containers]:
            # Katib's pod webhook: ErrPrimaryContainerNotFound, each trial would fail
            out.append("unable to find primary container in the Job's pod containers")
    elif run_spec.get("kind") == "TrainJob":
        from k8s_fake import crd

        try:
            jsonschema.validate(run_spec, crd("trainjobs"))
        except jsonschema.ValidationError as err:
            where = ".".join(str(p) for p in err.absolute_path) or "(root)"
            out.append(f"invalid TrainJob trial template: {where}: {err.message}")
    return out


# -- the StdOut metrics collector ---------------------------------------------------------------
#: the default filter of Katib >= 0.17 (pkg/metricscollector/v1beta1/common/const.go)
DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
#: the default filter of older Katib: no exponent, so 1e-05 reads as 1
OLD_FILTER = r"([\w|-]+)\s*=\s*((-?\d+)(\.\d+)?)"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def stdout_wrapped(command: list[str], folder: str, early_stopping: bool = False) -> list[str]:
    """The primary container's command once Katib's pod webhook has wrapped it for the StdOut
    collector (``wrapWorkerContainer``: the command joined with spaces, unquoted; its output to
    ``folder/metrics.log``; a ``completed`` mark in ``folder/<shell pid>.pid`` after it;
    Kubernetes has turned the webhook's ``$$$$`` into ``$$``)."""
    argv = list(command)
    shell = ["sh", "-c"]
    if argv[0] in ("sh", "bash") and argv[1] == "-c":
        shell, argv = argv[:2], argv[2:]
    argv.append(f"1>{folder}/metrics.log 2>&1")
    if early_stopping:
        argv += [
            "||",
            f"if test -f {folder}/$$.pid && [ $(head -n 1 {folder}/$$.pid) = early-stopped ]; "
            "then echo Training Container was Early Stopped; "
            "else echo Training Container was Failed; exit 1; fi",
        ]
    argv += ["&&", f"echo completed > {folder}/$$.pid"]
    return [*shell, " ".join(argv)]


def collect(
    lines: list[str], metrics: list[str], filters: tuple[str, ...] = (DEFAULT_FILTER,)
) -> list[tuple[str | None, str, str]]:
    """(timestamp or None, name, value) of each metric Katib's collector reads in ``lines``
    (``parseLogsInTextFormat``: a line is looked at if it holds a metric's name; a first word
    in RFC 3339 is its time; every filter match whose name is a metric counts)."""
    found: list[tuple[str | None, str, str]] = []
    for line in lines:
        if not any(m in line for m in metrics):
            continue
        first = line.split(" ", 1)
        stamp = first[0] if len(first) == 2 and _RFC3339.match(first[0]) else None
        for pattern in filters:
            for match in re.finditer(pattern, line):
                name, value = match.group(1).strip(), match.group(2).strip()
                if name in metrics:
                    found.append((stamp, name, value))
    return found
