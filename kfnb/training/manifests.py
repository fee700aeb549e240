"""The custom resources a cluster training job is: a Kubeflow Trainer ``TrainJob``
(``trainer.kubeflow.org/v1alpha1``) or a Training Operator ``PyTorchJob`` (``kubeflow.org/v1``),
as plain dicts that validate against the official CRD schemas (``tests`` check every one).

The program travels inside the job, with no object store: its folder (``program.py``, its
arguments, the notebook values) is packed as a gzipped tar in the environment variable
``KFNB_PROGRAM``; the container unpacks it and runs ``torchrun`` on it, which reads the node
count, node rank, processes per node and master address from the ``PET_*`` variables that both
operators set. The image must hold Python, torch and kfnb (the rank side imports
``kfnb.training.entry``). A program over ``MAX_PROGRAM_BYTES`` is refused before anything is
submitted, naming the notebook values that make it big.

Traps avoided: ``resourcesPerNode`` replaces the runtime's resources instead of merging with them
(trainer#3974), so the GPU count is always written, also beside a memory request; labels carry
the kfnb run id and notebook, so a job is found again from its run.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import BackendError

__all__ = [
    "MAX_PROGRAM_BYTES",
    "JobShape",
    "job_name",
    "labels",
    "pack",
    "pytorchjob",
    "trainjob",
]

#: what travels in the job's spec at most (etcd keeps objects under 1.5 MiB)
MAX_PROGRAM_BYTES = 700 * 1024
PROGRAM_ENV = "KFNB_PROGRAM"
UNPACK_DIR = "/tmp/kfnb-program"
GPU = "nvidia.com/gpu"
RUN_LABEL = "kfnb.io/run-id"
NOTEBOOK_LABEL = "kfnb.io/notebook"
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class JobShape:
    """What a cluster job asks for; the same for both kinds of resource."""

    name: str
    namespace: str
    image: str
    program: str  # ``pack()``ed program folder
    nodes: int = 1
    procs_per_node: int = 1
    gpus_per_node: int = 0
    cpu: str | None = None
    memory: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    notebook: str | None = None


def job_name(program: str, run_id: str) -> str:
    """A DNS-1123 name for the job: ``kfnb-<program>-<run id's last part>``, at most 63 chars
    (a JobSet appends its own suffixes, so it stays short)."""
    stem = re.sub(r"[^a-z0-9-]+", "-", program.lower()).strip("-")[:24].strip("-") or "job"
    tail = (
        run_id.rsplit("-", 1)[-1].lower()
        if run_id
        else hashlib.sha1(program.encode()).hexdigest()[:6]
    )
    return f"kfnb-{stem}-{tail}"


def pack(folder: Path, values: dict[str, int] | None = None) -> str:
    """The program folder as base64 of a gzipped tar; ``BackendError`` when it is too big to
    travel in the job, naming the largest notebook values (``values``: name -> bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(folder)))
    data = buffer.getvalue()
    if len(data) > MAX_PROGRAM_BYTES:
        largest = sorted((values or {}).items(), key=lambda kv: -kv[1])[:5]
        named = ", ".join(f"{n} ({size / 2**20:.1f} MiB)" for n, size in largest) or "none"
        raise BackendError(
            f"the program with its notebook values is {len(data) / 2**20:.1f} MiB packed, over "
            f"the {MAX_PROGRAM_BYTES // 1024} KiB a job can carry; the largest values: {named}",
            fix="load the data inside the training function (from a file or bucket the cluster "
            "reaches) instead of reading notebook variables",
        )
    return base64.b64encode(data).decode()


def _label(value: str) -> str:
    """A valid label value (63 chars of [A-Za-z0-9_.-], alphanumeric at both ends)."""
    return _LABEL_VALUE.sub("_", value)[-63:].strip("_.-")


def labels(run_id: str, notebook: str | None) -> dict[str, str]:
    """The labels of an object kfnb creates for run ``run_id`` (a job, a Katib experiment and
    its trials' pods), so it is found again from its run."""
    found = {"app.kubernetes.io/managed-by": "kfnb"}
    if run_id:
        found[RUN_LABEL] = _label(run_id)
    if notebook:
        found[NOTEBOOK_LABEL] = _label(Path(notebook).name)
    return found


def _labels(shape: JobShape) -> dict[str, str]:
    return labels(shape.run_id, shape.notebook)


def _env(shape: JobShape) -> list[dict[str, str]]:
    env = [{"name": PROGRAM_ENV, "value": shape.program}]
    env += [{"name": k, "value": str(v)} for k, v in sorted(shape.env.items())]
    env.append({"name": "KFNB_METRIC_LINES", "value": "1"})  # metrics as log lines: no store
    env.append({"name": "PYTHONUNBUFFERED", "value": "1"})
    return env


def _resources(shape: JobShape) -> dict[str, dict[str, str]]:
    limits = {GPU: str(shape.gpus_per_node)}  # always: a memory-only ask must not drop GPUs
    requests: dict[str, str] = {}
    if shape.cpu:
        limits["cpu"] = requests["cpu"] = shape.cpu
    if shape.memory:
        limits["memory"] = requests["memory"] = shape.memory
    return {"limits": limits, **({"requests": requests} if requests else {})}


def command() -> list[str]:
    """Unpack the program, then ``torchrun`` it (the operator's ``PET_*`` variables give nodes,
    node rank, processes per node and the master's address)."""
    unpack = (
        "import base64, io, os, tarfile; "
        f"tarfile.open(fileobj=io.BytesIO(base64.b64decode(os.environ['{PROGRAM_ENV}'])), "
        f"mode='r:gz').extractall('{UNPACK_DIR}')"
    )
    return [
        "bash",
        "-c",
        f'python -c "{unpack}" && exec python -m torch.distributed.run {UNPACK_DIR}/program.py',
    ]


def trainjob(
    shape: JobShape,
    runtime: str = "torch-distributed",
    container_command: list[str] | None = None,
) -> dict[str, Any]:
    """A ``TrainJob`` on the ``runtime`` ClusterTrainingRuntime; ``container_command`` replaces
    the nodes' ``command()`` (a Katib trial runs the program under ``kfnb.tuning.trial_pod``)."""
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": shape.name, "namespace": shape.namespace, "labels": _labels(shape)},
        "spec": {
            "runtimeRef": {
                "apiGroup": "trainer.kubeflow.org",
                "kind": "ClusterTrainingRuntime",
                "name": runtime,
            },
            "trainer": {
                "image": shape.image,
                "command": container_command or command(),
                "env": _env(shape),
                "numNodes": shape.nodes,
                "numProcPerNode": shape.procs_per_node,
                "resourcesPerNode": _resources(shape),
            },
        },
    }


def pytorchjob(shape: JobShape) -> dict[str, Any]:
    """A ``PyTorchJob``: a Master and ``nodes - 1`` Workers, the container named ``pytorch``."""

    def replica(count: int) -> dict[str, Any]:
        return {
            "replicas": count,
            "restartPolicy": "Never",
            "template": {
                "metadata": {"labels": _labels(shape)},
                "spec": {
                    "containers": [
                        {
                            "name": "pytorch",
                            "image": shape.image,
                            "command": command(),
                            "env": _env(shape),
                            "resources": _resources(shape),
                        }
                    ]
                },
            },
        }

    specs = {"Master": replica(1)}
    if shape.nodes > 1:
        specs["Worker"] = replica(shape.nodes - 1)
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": shape.name, "namespace": shape.namespace, "labels": _labels(shape)},
        "spec": {
            "nprocPerNode": str(shape.procs_per_node),
            "pytorchReplicaSpecs": specs,
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 0},
        },
    }
