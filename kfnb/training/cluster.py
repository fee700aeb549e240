"""Training on a Kubernetes cluster: ``trainjob`` (Kubeflow Trainer v2) and ``pytorchjob``
(Training Operator v1), through the official ``kubernetes`` client.

``submit`` records a ``train`` run (backend ``trainjob`` or ``pytorchjob``; one step per node,
``node-0``...; ``remote`` names the object), writes and packs the program, creates the custom
resource and returns a ``ClusterJob``. Nothing else runs here: the job lives on the cluster, and
``ClusterJob.refresh()`` brings its state into the store, as the kfp backend does for pipelines:
the object's conditions give the run's status, its pods the nodes' states and logs (copied into
the run's folder, so ``kfnb logs`` and the widget read them as they read local ones), and the
``KFNB_METRIC`` lines in node 0's log its metrics. ``cancel()`` deletes the object (its pods go
with it). ``dry_run`` gives the manifest without connecting anywhere.

Where to connect: ``namespace`` and ``kubeconfig``/``context`` as given, else
``$KUBECONFIG``/``~/.kube/config`` and its current context's namespace, else in a pod the
pod's service account and namespace. Why plain dicts and the generic ``CustomObjectsApi``, not
the ``kubeflow-trainer-api`` models or the Kubeflow SDK: the dicts are validated against the
official CRD schemas in the tests (the models check types only), and the SDK would bring its
own packaging (``inspect.getsource``) and job naming that kfnb replaces.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import BackendError
from ..errors import MissingDependencyError
from ..tracking import TERMINAL_RUN, Store
from ..tracking.context import METRIC_LINE_PREFIX
from .job import TrainJob
from .manifests import JobShape, job_name, pack, pytorchjob, trainjob
from .program import Program

POD_NAMESPACE_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class Kind:
    """A custom resource kind kfnb trains with."""

    backend: str
    kind: str
    group: str
    version: str
    plural: str
    container: str

    def manifest(self, shape: JobShape) -> dict[str, Any]:
        return trainjob(shape) if self.kind == "TrainJob" else pytorchjob(shape)

    def pod_selector(self, name: str) -> str:
        if self.kind == "TrainJob":
            return f"jobset.sigs.k8s.io/jobset-name={name}"
        return f"training.kubeflow.org/job-name={name}"

    def node_of(self, pod: Any) -> int:
        labels = pod.metadata.labels or {}
        if self.kind == "TrainJob":
            return int(labels.get("batch.kubernetes.io/job-completion-index", "0"))
        index = int(labels.get("training.kubeflow.org/replica-index", "0"))
        master = labels.get("training.kubeflow.org/replica-type", "master").lower() == "master"
        return 0 if master else index + 1


KINDS = {
    "trainjob": Kind(
        "trainjob", "TrainJob", "trainer.kubeflow.org", "v1alpha1", "trainjobs", "node"
    ),
    "pytorchjob": Kind("pytorchjob", "PyTorchJob", "kubeflow.org", "v1", "pytorchjobs", "pytorch"),
}


@dataclass(frozen=True)
class Target:
    """Where the cluster is: all optional (see the module docstring)."""

    namespace: str | None = None
    kubeconfig: str | None = None
    context: str | None = None


def _kubernetes() -> Any:
    try:
        import kubernetes
    except ImportError as err:
        raise MissingDependencyError("kubernetes", "cluster", "training on a cluster") from err
    return kubernetes


def connect(target: Target, env: Mapping[str, str] | None = None) -> tuple[Any, str]:
    """An ``ApiClient`` and the namespace to use."""
    k8s = _kubernetes()
    env = os.environ if env is None else env
    configuration = k8s.client.Configuration()
    namespace = target.namespace
    in_pod = "KUBERNETES_SERVICE_HOST" in env and not (target.kubeconfig or env.get("KUBECONFIG"))
    try:
        if in_pod:
            k8s.config.load_incluster_config(client_configuration=configuration)
            if namespace is None and Path(POD_NAMESPACE_PATH).exists():
                namespace = Path(POD_NAMESPACE_PATH).read_text().strip() or None
        else:
            k8s.config.load_kube_config(
                config_file=target.kubeconfig or env.get("KUBECONFIG") or None,
                context=target.context,
                client_configuration=configuration,
            )
            if namespace is None:
                _, current = k8s.config.list_kube_config_contexts(
                    config_file=target.kubeconfig or env.get("KUBECONFIG") or None
                )
                active = current
                if target.context:
                    contexts, _ = k8s.config.list_kube_config_contexts(
                        config_file=target.kubeconfig or env.get("KUBECONFIG") or None
                    )
                    active = next((c for c in contexts if c["name"] == target.context), current)
                namespace = (active or {}).get("context", {}).get("namespace")
    except (k8s.config.ConfigException, OSError) as err:
        raise BackendError(
            f"cannot find a Kubernetes cluster to train on: {err}",
            fix="set KUBECONFIG (or pass kubeconfig=...), or run inside a Kubeflow pod",
        ) from None
    return k8s.client.ApiClient(configuration), namespace or "default"


@dataclass(frozen=True)
class Ask:
    """What a cluster job asks for (``submit`` and ``dry_run`` alike)."""

    image: str | None
    nodes: int = 1
    procs: int = 1
    gpus: int = 0
    cpu: str | None = None
    memory: str | None = None
    env: Mapping[str, str] | None = None
    notebook: str | None = None


def shape(program: Program, folder: Path, *, run_id: str, namespace: str, ask: Ask) -> JobShape:
    """What the job asks for; the program written into ``folder`` and packed."""
    if not ask.image:
        raise BackendError(
            "a cluster job needs an image (with Python, torch and kfnb installed)",
            fix="pass image='registry/name:tag' (kfnb train ... --image REF)",
        )
    if ask.nodes < 1 or ask.procs < 1 or ask.gpus < 0:
        raise BackendError(
            f"nodes and procs_per_node must be at least 1 and gpus_per_node not negative "
            f"(got nodes={ask.nodes}, procs_per_node={ask.procs}, gpus_per_node={ask.gpus})"
        )
    program.write(folder)
    return JobShape(
        name=job_name(program.name, run_id),
        namespace=namespace,
        image=ask.image,
        program=pack(folder, program.value_bytes(folder)),
        nodes=ask.nodes,
        procs_per_node=ask.procs,
        gpus_per_node=ask.gpus,
        cpu=ask.cpu,
        memory=ask.memory,
        env=dict(ask.env or {}),
        run_id=run_id,
        notebook=ask.notebook,
    )


def api_error(err: Any, what: str, kind: Kind, namespace: str) -> BackendError:
    """A ``kubernetes`` ``ApiException`` as a ``BackendError`` with a fix."""
    status = getattr(err, "status", None)
    try:
        message = json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError, AttributeError):
        message = getattr(err, "reason", None) or str(err)
    fixes = {
        404: f"is the {kind.kind} resource installed on the cluster? (kubectl get crd "
        f"{kind.plural}.{kind.group}); Trainer v1 clusters take --backend pytorchjob",
        403: f"your account may not {what} in namespace {namespace}: ask for RBAC on "
        f"{kind.plural}.{kind.group}, or pick your own namespace",
        409: "a job of that name exists: retry (the name comes from the run id)",
        422: "the cluster refused the manifest: see the message",
    }
    return BackendError(
        f"could not {what} in namespace {namespace}: HTTP {status}: {message}",
        fix=fixes.get(status or 0, "check the cluster and your kubeconfig"),
    )


def submit(
    program: Program,
    store: Store,
    kind: Kind,
    target: Target,
    ask: Ask,
    *,
    parent_id: str | None = None,
) -> ClusterJob:
    api, namespace = connect(target)
    run = store.create_run(
        kind="train",
        parent_id=parent_id,
        name=program.name,
        backend=kind.backend,
        notebook=ask.notebook,
        notebook_hash=None,
        params=program.recorded_args(),
        steps=[f"node-{n}" for n in range(ask.nodes)],
        remote={"kind": kind.kind, "namespace": namespace, "name": None},
        spec=program.spec(procs=ask.procs, gpus=ask.gpus, nodes=ask.nodes, image=ask.image),
    )
    folder = Path(run.artifacts_dir)
    try:
        job = shape(program, folder / "program", run_id=run.id, namespace=namespace, ask=ask)
        manifest = kind.manifest(job)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
        k8s = _kubernetes()
        try:
            k8s.client.CustomObjectsApi(api).create_namespaced_custom_object(
                kind.group, kind.version, namespace, kind.plural, manifest
            )
        except k8s.client.ApiException as err:
            raise api_error(err, f"create {kind.kind} {job.name}", kind, namespace) from None
    except BaseException as err:
        store.set_run_status(run.id, "FAILED", error=str(err))
        raise
    store.set_remote(run.id, name=job.name)
    store.add_artifact(run.id, "manifest.json", folder / "manifest.json")
    store.event(run.id, "submitted", {"backend": kind.backend, "name": job.name})
    return ClusterJob(store, run.id, api, kind)


def dry_run(program: Program, kind: Kind, ask: Ask, namespace: str | None = None) -> dict[str, Any]:
    """The manifest ``submit`` would create; nothing is recorded or sent."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kfnb-dry-run-") as tmp:
        job = shape(program, Path(tmp), run_id="", namespace=namespace or "default", ask=ask)
    return kind.manifest(job)


class ClusterJob(TrainJob):
    """A job on the cluster, followed by polling the API into the store."""

    poll = 2.0

    def __init__(self, store: Store, run_id: str, api: Any, kind: Kind) -> None:
        super().__init__(store, run_id)
        self.api = api
        self.kind = kind
        self._last = 0.0

    @property
    def remote(self) -> dict[str, Any]:
        return self.record.remote or {}

    def refresh(self) -> str:
        """Read the job, its pods and their logs into the store; the run's status."""
        record = self.record
        if record.status in TERMINAL_RUN:
            return record.status
        k8s = _kubernetes()
        remote = self.remote
        name, namespace = remote["name"], remote["namespace"]
        self._last = time.monotonic()
        try:
            obj = k8s.client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                self.kind.group, self.kind.version, namespace, self.kind.plural, name
            )
            pods = k8s.client.CoreV1Api(self.api).list_namespaced_pod(
                namespace, label_selector=self.kind.pod_selector(name)
            )
        except k8s.client.ApiException as err:
            if getattr(err, "status", None) == 404:
                self.store.set_run_status(self.id, "CANCELED", error=f"{name} was deleted")
                return "CANCELED"
            raise api_error(err, f"read {self.kind.kind} {name}", self.kind, namespace) from None
        self._read_pods(pods.items, namespace)
        status, error = _status(obj)
        if status != record.status and not (status == "PENDING" and record.status == "RUNNING"):
            if status in TERMINAL_RUN:
                self._end_nodes(status)
            self.store.set_run_status(self.id, status, error=error)  # type: ignore[arg-type]
        return self.record.status

    def _read_pods(self, pods: list[Any], namespace: str) -> None:
        k8s = _kubernetes()
        core = k8s.client.CoreV1Api(self.api)
        steps = {s.name: s for s in self.record.steps}
        for pod in pods:
            node = f"node-{self.kind.node_of(pod)}"
            if node not in steps:
                continue
            phase = (pod.status.phase if pod.status else None) or "Pending"
            log = Path(self.record.artifacts_dir) / "logs" / f"{node}.log"
            if phase != "Pending":
                try:
                    text = core.read_namespaced_pod_log(
                        pod.metadata.name, namespace, container=self.kind.container
                    )
                except k8s.client.ApiException:
                    text = ""
                self._append_log(node, log, text or "", phase in ("Succeeded", "Failed"))
            wanted = {"Running": "RUNNING", "Succeeded": "SUCCEEDED", "Failed": "FAILED"}.get(phase)
            if wanted and steps[node].status != wanted and steps[node].status != "SUCCEEDED":
                self.store.set_step_status(self.id, node, wanted, log=str(log))  # type: ignore[arg-type]

    def _append_log(self, node: str, path: Path, text: str, ended: bool) -> None:
        """Copy the complete lines of a pod's log not copied yet (all of it once the pod
        ended); node 0's ``KFNB_METRIC`` lines among them become metrics. The copy's size is
        where the next look starts, so no line is read twice, or cut in two, across refreshes
        and processes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.stat().st_size if path.exists() else 0
        data = text.encode()
        if len(data) < old:  # the pod restarted: its log began again
            path.write_bytes(b"")
            old = 0
        end = len(data) if ended else data.rfind(b"\n", old) + 1
        if end <= old:
            return
        new = data[old:end]
        with path.open("ab") as f:
            f.write(new)
        if node != "node-0":
            return
        for line in new.decode(errors="replace").splitlines():
            if line.startswith(METRIC_LINE_PREFIX):
                try:
                    m = json.loads(line[len(METRIC_LINE_PREFIX) :])
                    self.store.log_metric(
                        self.id, m["name"], m["value"], step=m.get("step"), source="rank-0"
                    )
                except (ValueError, KeyError, TypeError):
                    continue

    def _end_nodes(self, status: str) -> None:
        for step in self.record.steps:
            if step.status not in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"):
                final = "SKIPPED" if step.status == "PENDING" else status
                self.store.set_step_status(self.id, step.name, final)  # type: ignore[arg-type]

    def wait(self, timeout: float | None = None) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.refresh() in TERMINAL_RUN:
                return self.status
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return self.status
            time.sleep(self.poll if left is None else min(self.poll, left))

    def cancel(self) -> None:
        """Delete the job on the cluster (its pods go with it)."""
        k8s = _kubernetes()
        remote = self.remote
        self.store.request_cancel(self.id)
        try:
            k8s.client.CustomObjectsApi(self.api).delete_namespaced_custom_object(
                self.kind.group,
                self.kind.version,
                remote["namespace"],
                self.kind.plural,
                remote["name"],
                propagation_policy="Foreground",
            )
        except k8s.client.ApiException as err:
            if getattr(err, "status", None) != 404:
                raise api_error(
                    err, f"delete {self.kind.kind} {remote['name']}", self.kind, remote["namespace"]
                ) from None
        self._end_nodes("CANCELED")
        if self.record.status not in TERMINAL_RUN:
            self.store.set_run_status(self.id, "CANCELED")


def _status(obj: Mapping[str, Any]) -> tuple[str, str | None]:
    """The run status a job object's conditions say (TrainJob or PyTorchJob)."""
    conditions = [
        c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"
    ]
    types = {c.get("type"): c for c in conditions}
    for done, status in (
        ("Complete", "SUCCEEDED"),
        ("Succeeded", "SUCCEEDED"),
        ("Failed", "FAILED"),
    ):
        if done in types:
            c = types[done]
            error = None if status == "SUCCEEDED" else (c.get("message") or c.get("reason"))
            return status, error
    if "Running" in types:
        return "RUNNING", None
    return "PENDING", None
