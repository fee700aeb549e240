"""A Katib study followed from here: ``KatibStudy``, the handle of a ``tune`` run on Katib.

``refresh()`` reads the Experiment and its Trials (label ``katib.kubeflow.org/experiment``)
into the store: one ``trial`` run per Trial (created once, numbered in creation order, remote
too: no runner pid here), its parameters typed back through the study's space, its state moved
along the store's (Running -> RUNNING, Succeeded -> SUCCEEDED, Failed and MetricsUnavailable
-> FAILED with why, EarlyStopped -> PRUNED, Killed -> CANCELED; PENDING walks through RUNNING),
its observed metrics recorded when it ends; the study's status from the Experiment's conditions
(Succeeded with no succeeded trial is FAILED, as a local study is); ``currentOptimalTrial`` as
``remote.best``; a budget raised by ``Study.add_trials`` as a larger ``maxTrialCount``. A
refresh holds a lock file in the study's folder, so two processes create each trial once.
``cancel()`` deletes the Experiment (its trials and their jobs go with it), keeping records.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..backends import BackendError, RunHandle
from ..errors import KfnbError
from ..tracking import TERMINAL_RUN, Run, Store
from ..training import cluster
from .experiment import EXPERIMENT_LABEL, EXPERIMENTS, GROUP, TRIALS, VERSION, trial_counts
from .katib_values import finite, typed
from .space import SpaceError
from .spec import StudySpec

KIND = cluster.Kind("katib", "Experiment", GROUP, VERSION, EXPERIMENTS, "")
LOCK = "katib.lock"
METRICS_HINT = (
    "a trial prints its metrics as name=value lines, which Katib reads only in namespaces "
    "labelled katib.kubeflow.org/metrics-collector-injection=enabled"
)
#: a Trial's condition (status True) -> its run's status, the first found wins
TRIAL_STATES = (
    ("EarlyStopped", "PRUNED"),
    ("Killed", "CANCELED"),
    ("Failed", "FAILED"),
    ("MetricsUnavailable", "FAILED"),
    ("Succeeded", "SUCCEEDED"),
    ("Running", "RUNNING"),
)


def _error(err: Any, what: str, namespace: str) -> BackendError:
    """An ``ApiException`` as ``cluster.api_error`` says it, with Katib's fixes."""
    base = cluster.api_error(err, what, KIND, namespace)
    fixes = {
        404: f"is Katib installed (kubectl get crd experiments.kubeflow.org), and does namespace "
        f"{namespace} exist? (pass namespace=...)",
        409: "an experiment of that name exists there: pass another name (option name=...)",
    }
    status = getattr(err, "status", None)
    return BackendError(base.message, fix=fixes[status]) if status in fixes else base


class KatibStudy(RunHandle):
    """A study on a Katib cluster, followed by polling the API into the store."""

    poll = 2.0

    def __init__(self, store: Store, run_id: str, api: Any) -> None:
        super().__init__(store, run_id)
        self.api = api
        self._last = 0.0

    # -- the cluster ------------------------------------------------------------------------
    @property
    def remote(self) -> dict[str, Any]:
        return dict(self.record.remote or {})

    def _objects(self) -> Any:
        return cluster._kubernetes().client.CustomObjectsApi(self.api)

    def read(self) -> dict[str, Any] | None:
        """The Experiment as the cluster has it (``None``: it was deleted)."""
        k8s = cluster._kubernetes()
        remote = self.remote
        try:
            obj: dict[str, Any] = self._objects().get_namespaced_custom_object(
                GROUP, VERSION, remote["namespace"], EXPERIMENTS, remote["name"]
            )
        except k8s.client.ApiException as err:
            if getattr(err, "status", None) == 404:
                return None
            raise _error(err, f"read Experiment {remote['name']}", remote["namespace"]) from None
        return obj

    def _trials(self) -> list[dict[str, Any]]:
        k8s = cluster._kubernetes()
        remote = self.remote
        try:
            found = self._objects().list_namespaced_custom_object(
                GROUP,
                VERSION,
                remote["namespace"],
                TRIALS,
                label_selector=f"{EXPERIMENT_LABEL}={remote['name']}",
            )
        except k8s.client.ApiException as err:
            raise _error(err, f"list the trials of {remote['name']}", remote["namespace"]) from None
        return list(found.get("items") or [])

    def patch_budget(self, obj: Mapping[str, Any], trials: int) -> None:
        """Raise the Experiment's ``maxTrialCount`` to ``trials``."""
        k8s = cluster._kubernetes()
        remote = self.remote
        try:
            self._objects().patch_namespaced_custom_object(
                GROUP,
                VERSION,
                remote["namespace"],
                EXPERIMENTS,
                remote["name"],
                {"spec": {"maxTrialCount": trials}},
            )
        except k8s.client.ApiException as err:
            raise _error(
                err, f"raise the budget of {remote['name']}", remote["namespace"]
            ) from None
        before = (obj.get("spec") or {}).get("maxTrialCount")
        self.store.event(self.id, "budget", {"maxTrialCount": trials, "was": before})

    # -- following --------------------------------------------------------------------------
    def refresh(self) -> str:
        """Read the Experiment and its trials into the store; the study's status."""
        if self.record.status in TERMINAL_RUN:
            return self.record.status
        with self._locked():
            self._refresh()
        return self.status

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(Path(self.record.artifacts_dir) / LOCK, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _refresh(self) -> None:
        self._last = time.monotonic()
        record = self.record
        if record.status in TERMINAL_RUN:
            return
        obj = self.read()
        if obj is None:
            where = f"{self.remote.get('namespace')}/{self.remote.get('name')}"
            self._end("CANCELED", f"Experiment {where} was deleted")
            return
        spec = StudySpec.from_dict((record.spec or {})["study"])
        condition = _condition(obj)[0]
        stored = int(((record.spec or {}).get("study") or {}).get("trials", spec.trials))
        want = trial_counts(spec, stored)["maxTrialCount"]
        current = (obj.get("spec") or {}).get("maxTrialCount")
        if current is not None and want > current and condition not in ("Succeeded", "Failed"):
            self.patch_budget(obj, want)  # Study.add_trials raised it
        runs = self._sync(self._trials(), spec)
        self._optimum(obj, spec, runs)
        status, error = _study_status(obj, any(r.status == "SUCCEEDED" for r in self.children()))
        if status in TERMINAL_RUN:
            self._end(status, error)
        elif status == "RUNNING" and self.record.status == "PENDING":
            self.store.set_run_status(self.id, "RUNNING")

    def _sync(self, trials: list[dict[str, Any]], spec: StudySpec) -> dict[str, Run]:
        """One trial run per Katib Trial (created once), each at its Trial's state."""
        children = [r for r in self.store.children(self.id) if r.kind == "trial"]
        known = {((r.spec or {}).get("trial") or {}).get("name"): r for r in children}
        fresh = sorted(
            (t for t in trials if t["metadata"]["name"] not in known),
            key=lambda t: (t["metadata"].get("creationTimestamp") or "", t["metadata"]["name"]),
        )
        number = len(children)
        record = self.record
        for trial in fresh:
            name = trial["metadata"]["name"]
            assigned = (trial.get("spec") or {}).get("parameterAssignments") or []
            known[name] = self.store.create_run(
                kind="trial",
                name=f"trial-{number}",
                backend="katib",
                notebook=record.notebook,
                notebook_hash=None,
                params={a["name"]: _typed(spec, a["name"], a.get("value", "")) for a in assigned},
                parent_id=self.id,
                remote={"kind": "Trial", "namespace": self.remote["namespace"], "name": name},
                spec={"trial": {"number": number, "name": name}},
            )
            number += 1
        for trial in trials:
            self._follow(known[trial["metadata"]["name"]], trial, spec.objective)
        return {name: run for name, run in known.items() if name}

    def _follow(self, run: Run, trial: Mapping[str, Any], objective: str) -> None:
        status, error = _trial_status(trial, objective)
        current = self.store.get_run(run.id).status
        if status == current or current in TERMINAL_RUN or status == "PENDING":
            return
        if current == "PENDING":
            self.store.set_run_status(run.id, "RUNNING")
            current = "RUNNING"
        if status == "RUNNING":
            return
        observed = ((trial.get("status") or {}).get("observation") or {}).get("metrics") or []
        for metric in observed:
            value = finite(metric.get("latest"))
            if value is not None and metric.get("name"):
                self.store.log_metric(run.id, metric["name"], value, source="katib")
        self.store.set_run_status(run.id, status, error=error)  # type: ignore[arg-type]
        number = ((run.spec or {}).get("trial") or {}).get("number")
        self.store.event(self.id, "trial", {"trial": number, "run": run.id, "status": status})

    def _optimum(self, obj: Mapping[str, Any], spec: StudySpec, runs: dict[str, Run]) -> None:
        """Keep Katib's ``currentOptimalTrial`` as ``remote.best``."""
        best = (obj.get("status") or {}).get("currentOptimalTrial") or {}
        name = best.get("bestTrialName")
        if not name:
            return
        run = runs.get(name)
        entry = {
            "trial": name,
            "run": run.id if run else None,
            "number": ((run.spec or {}).get("trial") or {}).get("number") if run else None,
            "params": {
                a["name"]: _typed(spec, a["name"], a.get("value", ""))
                for a in best.get("parameterAssignments") or []
            },
            "metrics": {
                m["name"]: finite(m.get("latest"))
                for m in (best.get("observation") or {}).get("metrics") or []
                if m.get("name")
            },
        }
        if self.remote.get("best") != entry:
            self.store.set_remote(self.id, best=entry)

    def _end(self, status: str, error: str | None) -> None:
        """End the study (walked through RUNNING) and close trials left open."""
        for child in self.children():
            if child.kind == "trial" and child.status not in TERMINAL_RUN:
                self.store.set_run_status(child.id, "CANCELED")
        if self.record.status == "PENDING" and status != "CANCELED":
            self.store.set_run_status(self.id, "RUNNING")
        if self.record.status not in TERMINAL_RUN:
            self.store.set_run_status(self.id, status, error=error)  # type: ignore[arg-type]

    def wait(self, timeout: float | None = None) -> str:
        """Poll the cluster (every ``poll`` seconds) until the study ends or ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if time.monotonic() - self._last >= self.poll:
                self.refresh()
            if self.status in TERMINAL_RUN:
                return self.status
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return self.status
            time.sleep(self.poll if left is None else min(self.poll, left))

    def cancel(self) -> None:
        """Stop the study: the trials' last states are read, then the Experiment is deleted
        (its trials and their jobs go with it); records stay, open ones end CANCELED."""
        if self.record.status in TERMINAL_RUN:
            return
        k8s = cluster._kubernetes()
        remote = self.remote
        with self._locked():
            with contextlib.suppress(KfnbError):
                self._refresh()  # a cluster that cannot be read still gets the delete
            if self.record.status in TERMINAL_RUN:
                return
            self.store.request_cancel(self.id)
            try:
                self._objects().delete_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    remote["namespace"],
                    EXPERIMENTS,
                    remote["name"],
                    propagation_policy="Foreground",
                )
            except k8s.client.ApiException as err:
                if getattr(err, "status", None) != 404:
                    raise _error(
                        err, f"delete Experiment {remote['name']}", remote["namespace"]
                    ) from None
            self._end("CANCELED", None)


def _typed(spec: StudySpec, name: str, text: str) -> Any:
    try:
        return typed(spec.space, name, text)
    except SpaceError:  # a value the space does not know (an edited Experiment): as given
        return text


def _condition(obj: Mapping[str, Any]) -> tuple[str | None, str, str]:
    """The Experiment's state: (condition type, reason, message) of its latest true one."""
    conditions = [
        c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"
    ]
    types = {c.get("type"): c for c in conditions}
    for kind in ("Failed", "Succeeded", "Restarting", "Running", "Created"):
        if kind in types:
            found = types[kind]
            return kind, str(found.get("reason") or ""), str(found.get("message") or "")
    return None, "", ""


def _study_status(obj: Mapping[str, Any], any_succeeded: bool) -> tuple[str, str | None]:
    condition, reason, message = _condition(obj)
    if condition == "Failed":
        return "FAILED", message or reason or "the Experiment failed"
    if condition == "Succeeded":
        if any_succeeded:
            return "SUCCEEDED", None
        return "FAILED", f"no trial succeeded (Katib: {reason or 'Succeeded'})"
    if condition in ("Running", "Restarting"):
        return "RUNNING", None
    return "PENDING", None


def _trial_status(trial: Mapping[str, Any], objective: str) -> tuple[str, str | None]:
    """A Katib Trial's state as a run status, and why it failed."""
    status = trial.get("status") or {}
    true = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    name = (trial.get("metadata") or {}).get("name")
    for condition, state in TRIAL_STATES:
        if condition not in true:
            continue
        said = true[condition].get("message") or true[condition].get("reason") or condition
        if condition == "Failed":
            return state, f"Katib trial {name} failed: {said}"
        if condition == "MetricsUnavailable":
            return state, f"Katib found no {objective!r} in trial {name}'s output ({said}); " + (
                METRICS_HINT
            )
        if condition == "Succeeded":
            observed = (status.get("observation") or {}).get("metrics") or []
            value = next(
                (finite(m.get("latest")) for m in observed if m.get("name") == objective), None
            )
            if value is None:
                return "FAILED", f"trial {name} ended without a value of {objective!r}; " + (
                    METRICS_HINT
                )
        return state, None
    return "PENDING", None
