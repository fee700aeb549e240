"""The ``katib`` tuning backend: a study as a Katib ``Experiment`` on a Kubeflow cluster.

``submit`` records a ``tune`` run (backend ``katib``, ``remote`` naming the Experiment: no runner
pid here, so ``recover()`` leaves it alone), builds the Experiment (``experiment.build``) and
creates it through the ``kubernetes`` client, connected as cluster training connects
(``kfnb.training.cluster.connect``, its errors said as ``cluster.api_error`` says them);
``experiment`` is the dry run. Nothing else runs here: the cluster drives the study, and its
handle (``katib_study.KatibStudy``) brings it into the store, so a Katib study reads like a
local one in every surface (``view.study_view``). ``attach_record`` gives that handle from any
process.

``resume`` goes on where Katib can: an Experiment that still runs is followed again; one that
succeeded by reaching ``maxTrialCount`` with ``resumePolicy`` LongRunning or FromVolume gets the
study's larger budget (``Study.add_trials``) and restarts; otherwise (a stopped study's
Experiment is deleted; a failed one, or one created with resumePolicy Never, cannot restart) a
``NotResumable`` error says why and what to do.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import RunHandle
from ..errors import KfnbError
from ..tracking import Run, Store
from ..training import cluster
from . import NotResumable
from .experiment import EXPERIMENTS, GROUP, VERSION, build, check, dry_run, trial_counts
from .katib_options import Options, experiment_name, parse_options
from .katib_study import KatibStudy, _condition, _error
from .spec import StudySpec

if TYPE_CHECKING:
    from ..settings import Settings
    from .target import Made


def _target(opts: Options) -> cluster.Target:
    return cluster.Target(
        namespace=opts.namespace, kubeconfig=opts.kubeconfig, context=opts.context
    )


def experiment(
    spec: StudySpec, made: Made, options: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """The Experiment ``submit`` would create (dry run: nothing recorded or sent). Its
    namespace: the option, else the kubeconfig context's (read, not contacted), else default."""
    opts = parse_options(options, made)
    namespace = opts.namespace
    if namespace is None:
        try:
            _, namespace = cluster.connect(_target(opts), settings.env)
        except KfnbError:
            namespace = "default"
    return dry_run(spec, made, opts, namespace)


def submit(
    spec: StudySpec, made: Made, options: dict[str, Any], store: Store, settings: Settings
) -> RunHandle:
    """Record the study, create its Experiment, and return its handle."""
    from ..spec import pipeline_view

    opts = parse_options(options, made)
    check(spec, made)  # what Katib cannot do fails before anything is recorded
    api, namespace = cluster.connect(_target(opts), settings.env)
    store.recover()
    extra = {"pipeline": pipeline_view(made.pipeline)} if made.pipeline is not None else {}
    remote: dict[str, Any] = {"kind": "Experiment", "namespace": namespace, "name": None}
    remote.update(
        {k: v for k, v in (("kubeconfig", opts.kubeconfig), ("context", opts.context)) if v}
    )
    record = store.create_run(
        kind="tune",
        name=made.name,
        backend="katib",
        notebook=made.notebook,
        notebook_hash=None,
        params=spec.fixed,
        remote=remote,
        spec={"study": spec.to_dict(), **extra},
    )
    folder = Path(record.artifacts_dir)
    try:
        name = opts.name or experiment_name(made, record.id)
        manifest = build(
            spec, made, opts, name=name, namespace=namespace, run_id=record.id, folder=folder
        )
        (folder / "experiment.json").write_text(json.dumps(manifest, indent=2))
        k8s = cluster._kubernetes()
        try:
            k8s.client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, VERSION, namespace, EXPERIMENTS, manifest
            )
        except k8s.client.ApiException as err:
            raise _error(err, f"create Experiment {name}", namespace) from None
    except BaseException as err:
        store.set_run_status(record.id, "FAILED", error=str(err))
        raise
    store.set_remote(record.id, name=name)
    store.add_artifact(record.id, "experiment.json", folder / "experiment.json")
    store.event(record.id, "submitted", {"backend": "katib", "name": name, "namespace": namespace})
    return KatibStudy(store, record.id, api)


def attach_record(store: Store, record: Run, settings: Settings) -> RunHandle:
    """A handle on the recorded Katib study ``record``, through its cluster."""
    return _attach(store, record, settings)


def _attach(store: Store, record: Run, settings: Settings) -> KatibStudy:
    remote = record.remote or {}
    target = cluster.Target(
        namespace=remote.get("namespace"),
        kubeconfig=remote.get("kubeconfig"),
        context=remote.get("context"),
    )
    api, _ = cluster.connect(target, settings.env)
    return KatibStudy(store, record.id, api)


def resume(store: Store, record: Run, settings: Settings) -> RunHandle:
    """Go on with the stopped or ended study ``record`` where Katib can (module docstring);
    a ``NotResumable`` error saying why not otherwise."""
    study = _attach(store, record, settings)
    remote = record.remote or {}
    where = f"{remote.get('namespace')}/{remote.get('name')}"
    obj = study.read()
    if obj is None:
        raise NotResumable(
            f"study {record.id}'s Experiment {where} no longer exists (a stopped study's "
            "Experiment is deleted), so Katib cannot go on with it",
            fix="start a new study with the same settings (kfnb tune ... --backend katib); "
            f"the trials of {record.id} stay recorded",
        )
    condition, reason, message = _condition(obj)
    if condition in ("Succeeded", "Failed"):
        policy = (obj.get("spec") or {}).get("resumePolicy") or "Never"
        if condition == "Failed" or reason != "ExperimentMaxTrialsReached":
            raise NotResumable(
                f"Katib cannot restart Experiment {where}: it ended {condition} ({reason}: "
                f"{message}); only one that succeeded by reaching maxTrialCount goes on",
                fix="start a new study (kfnb tune ... --backend katib)",
            )
        if policy not in ("LongRunning", "FromVolume"):
            raise NotResumable(
                f"Katib cannot restart Experiment {where}: its resumePolicy is {policy}",
                fix="start a new study with options resume_policy='LongRunning' (or "
                "'FromVolume') to be able to add trials after it ends",
            )
        spec = StudySpec.from_dict((record.spec or {})["study"])
        stored = int(((record.spec or {}).get("study") or {}).get("trials", spec.trials))
        want = trial_counts(spec, stored)["maxTrialCount"]
        had = int((obj.get("status") or {}).get("trials") or 0)
        if want <= had:
            raise NotResumable(
                f"study {record.id} has had its {had} trials",
                fix="raise its budget: study.add_trials(n)",
            )
        store.resume_run(record.id)  # first: a store that refuses leaves the cluster as it was
        try:
            study.patch_budget(obj, want)
        except BaseException:
            with contextlib.suppress(KfnbError):
                study.refresh()  # the study as its Experiment still is
            raise
    else:  # still running on the cluster: follow it again
        store.resume_run(record.id)
    store.event(record.id, "resumed", {"backend": "katib", "experiment": where})
    return study
