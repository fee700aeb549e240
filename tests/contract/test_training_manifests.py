"""The custom resources of cluster training jobs (TrainJob, PyTorchJob) against the official
CRD schemas in tests/fixtures/crds (made strict by k8s_fake: a field the CRD does not know is an
error here, where the API server would drop it silently), and what they carry."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from k8s_fake import crd

from kfnb.backends import BackendError
from kfnb.training.manifests import (
    MAX_PROGRAM_BYTES,
    JobShape,
    command,
    job_name,
    pack,
    pytorchjob,
    trainjob,
)


def shape(**kw: Any) -> JobShape:
    args: dict[str, Any] = {
        "name": job_name("train", "20261207-004813-377ce8"),
        "namespace": "team-a",
        "image": "registry.example/ml/train:1.0",
        "program": pack_text({"program.py": "print('hi')\n"}),
        "nodes": 2,
        "procs_per_node": 4,
        "gpus_per_node": 4,
        "memory": "32Gi",
        "env": {"HF_HOME": "/cache"},
        "run_id": "20261207-004813-377ce8",
        "notebook": "work/notebooks/Train Model.ipynb",
    }
    args.update(kw)
    return JobShape(**args)


def pack_text(files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("nodes", [1, 3])
def test_a_trainjob_validates_and_keeps_its_gpus_beside_memory(nodes: int) -> None:
    job = trainjob(shape(nodes=nodes))
    jsonschema.validate(job, crd("trainjobs"))
    trainer = job["spec"]["trainer"]
    assert job["spec"]["runtimeRef"]["name"] == "torch-distributed"
    assert trainer["numNodes"] == nodes and trainer["numProcPerNode"] == 4
    # resourcesPerNode replaces the runtime's: the GPUs are written next to the memory
    assert trainer["resourcesPerNode"] == {
        "limits": {"nvidia.com/gpu": "4", "memory": "32Gi"},
        "requests": {"memory": "32Gi"},
    }
    assert job["metadata"]["name"] == "kfnb-train-377ce8"
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "kfnb",
        "kfnb.io/run-id": "20261207-004813-377ce8",
        "kfnb.io/notebook": "Train_Model.ipynb",
    }
    names = [e["name"] for e in trainer["env"]]
    assert names == ["KFNB_PROGRAM", "HF_HOME", "KFNB_METRIC_LINES", "PYTHONUNBUFFERED"]


@pytest.mark.parametrize(("nodes", "workers"), [(1, None), (4, 3)])
def test_a_pytorchjob_validates_with_a_master_and_workers(nodes: int, workers: int | None) -> None:
    job = pytorchjob(shape(nodes=nodes, cpu="8"))
    jsonschema.validate(job, crd("pytorchjobs"))
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1
    assert (specs["Worker"]["replicas"] if "Worker" in specs else None) == workers
    container = specs["Master"]["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "4", "cpu": "8", "memory": "32Gi"}
    assert job["spec"]["nprocPerNode"] == "4"


def test_a_cpu_job_asks_for_no_gpus_explicitly() -> None:
    job = trainjob(shape(gpus_per_node=0, memory=None))
    assert job["spec"]["trainer"]["resourcesPerNode"] == {"limits": {"nvidia.com/gpu": "0"}}


def test_the_command_unpacks_the_program_and_runs_it(tmp_path: Path) -> None:
    """The container's command, run here with a fake torchrun: the program arrives intact."""
    folder = tmp_path / "program"
    (folder / "values").mkdir(parents=True)
    (folder / "program.py").write_text("print('program ran')\n")
    (folder / "values" / "x.npy").write_bytes(b"\x93NUMPY data")
    packed = pack(folder)
    fake = tmp_path / "bin"
    (fake / "torch" / "distributed").mkdir(parents=True)
    for pkg in (fake / "torch", fake / "torch" / "distributed"):
        (pkg / "__init__.py").write_text("")
    (fake / "torch" / "distributed" / "run.py").write_text(
        "import runpy, sys\nrunpy.run_path(sys.argv[1], run_name='__main__')\n"
    )
    unpack_dir = tmp_path / "unpacked"
    argv = [part.replace("/tmp/kfnb-program", str(unpack_dir)) for part in command()]
    done = subprocess.run(
        argv,
        env={**os.environ, "KFNB_PROGRAM": packed, "PYTHONPATH": str(fake)},
        capture_output=True,
        text=True,
        timeout=60,
        executable=None,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "program ran\n"
    assert (unpack_dir / "values" / "x.npy").read_bytes() == b"\x93NUMPY data"
    assert sys.executable  # (the command runs `python` from PATH, as in a container)


def test_a_program_too_big_to_travel_is_refused_naming_its_values(tmp_path: Path) -> None:
    folder = tmp_path / "program"
    (folder / "values").mkdir(parents=True)
    (folder / "program.py").write_text("x = 1\n")
    (folder / "values" / "X_train.npy").write_bytes(os.urandom(MAX_PROGRAM_BYTES + 1024))
    with pytest.raises(BackendError) as err:
        pack(folder, {"X_train": MAX_PROGRAM_BYTES + 1024, "config": 90})
    message = str(err.value)
    assert message.startswith("the program with its notebook values is 0.7 MiB packed, over the ")
    assert "the largest values: X_train (0.7 MiB), config (0.0 MiB)" in message
    assert "Fix: load the data inside the training function" in message
