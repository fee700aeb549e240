"""Cluster training (TrainJob, PyTorchJob) with the real ``kubernetes`` client against a
loopback fake API server that validates every object against the official CRD schema
(k8s_fake.py): submit, status, node logs and metrics, cancel, errors, dry run."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from k8s_fake import FakeKubernetes

import kfnb
from kfnb.backends import BackendError
from kfnb.tracking import Store
from kfnb.training import attach

X_TRAIN = [1.0, 2.0, 3.0]


def fit(lr: float = 0.1, epochs: int = 2) -> None:
    import kfnb as k

    for epoch in range(epochs):
        k.log_metric("loss", sum(X_TRAIN) * lr / (epoch + 1), step=epoch)


@pytest.fixture
def k8s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as fake:
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield fake


@pytest.fixture
def store(kfnb_env: Path) -> Store:
    return Store(kfnb_env)


def unpacked(manifest: dict) -> dict[str, bytes]:
    env = {e["name"]: e["value"] for e in manifest["spec"]["trainer"]["env"]}
    files = {}
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(env["KFNB_PROGRAM"]))) as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            if extracted is not None:
                files[member.name] = extracted.read()
    return files


def test_a_trainjob_is_submitted_followed_and_finished(k8s: FakeKubernetes, store: Store) -> None:
    job = kfnb.train(
        fit,
        {"lr": 0.5},
        backend="trainjob",
        nodes=2,
        procs_per_node=4,
        gpus_per_node=4,
        memory="16Gi",
        image="registry.example/ml:1",
    )
    run = store.get_run(job.id)
    name = f"kfnb-fit-{run.id.rsplit('-', 1)[-1]}"
    assert run.backend == "trainjob" and run.remote == {
        "kind": "TrainJob",
        "namespace": "team-a",  # the kubeconfig context's
        "name": name,
    }
    assert [s.name for s in run.steps] == ["node-0", "node-1"]
    # the object the cluster got (validated by the fake against the CRD): the program inside
    (obj,) = k8s.objects.values()
    assert obj["metadata"]["labels"]["kfnb.io/run-id"] == run.id
    files = unpacked(obj)
    assert "def fit(" in files["program.py"].decode()
    assert json.loads(files["args.json"]) == {"lr": 0.5, "epochs": 2}
    assert any(name.startswith("values/X_TRAIN") for name in files)
    create = next(r for r in k8s.requests if r["method"] == "POST")
    assert create["path"] == "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/trainjobs"
    assert create["headers"]["authorization"] == "Bearer t0ken"  # the kubeconfig user's

    assert job.refresh() == "PENDING"
    labels = {
        "jobset.sigs.k8s.io/jobset-name": name,
        "batch.kubernetes.io/job-completion-index": "0",
    }
    k8s.add_pod(
        "team-a",
        f"{name}-node-0-0",
        labels,
        "Running",
        "node",
        'epoch 0\nKFNB_METRIC {"name": "loss", "value": 3.0, "step": 0}\n',
    )
    k8s.add_pod(
        "team-a",
        f"{name}-node-0-1",
        {**labels, "batch.kubernetes.io/job-completion-index": "1"},
        "Running",
        "node",
        "worker up\n",
    )
    k8s.set_conditions("trainjobs", "team-a", name, "Created")
    k8s.set_conditions("trainjobs", "team-a", name, "Running")  # (a Trainer v2 condition)
    assert job.refresh() == "RUNNING"
    steps = {s.name: s.status for s in job.record.steps}
    assert steps == {"node-0": "RUNNING", "node-1": "RUNNING"}
    assert job.logs("node-0") == 'epoch 0\nKFNB_METRIC {"name": "loss", "value": 3.0, "step": 0}\n'
    assert job.metrics == {"loss": [3.0]}

    k8s.set_pod(
        "team-a",
        f"{name}-node-0-0",
        "Succeeded",
        'epoch 0\nKFNB_METRIC {"name": "loss", "value": 3.0, "step": 0}\n'
        'KFNB_METRIC {"name": "loss", "value": 1.5, "step": 1}\ndone\n',
    )
    k8s.set_pod("team-a", f"{name}-node-0-1", "Succeeded")
    k8s.set_conditions("trainjobs", "team-a", name, "Complete")
    assert job.wait(10) == "SUCCEEDED"
    assert job.metrics == {"loss": [3.0, 1.5]}  # each line once
    assert job.logs("node-0").endswith("done\n")
    assert {s.status for s in job.record.steps} == {"SUCCEEDED"}
    # another process finds it again, through the cluster
    assert attach(run.id).refresh() == "SUCCEEDED"


def test_a_failed_pytorchjob_says_why(k8s: FakeKubernetes, store: Store) -> None:
    job = kfnb.train(fit, backend="pytorchjob", nodes=3, image="img:1")
    name = job.record.remote["name"]
    (obj,) = k8s.objects.values()
    assert obj["kind"] == "PyTorchJob"
    assert obj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    k8s.add_pod(
        "team-a",
        f"{name}-master-0",
        {
            "training.kubeflow.org/job-name": name,
            "training.kubeflow.org/replica-type": "master",
            "training.kubeflow.org/replica-index": "0",
        },
        "Failed",
        "pytorch",
        "Traceback (most recent call last):\nValueError: bad shard\n",
    )
    k8s.set_conditions(
        "pytorchjobs", "team-a", name, "Failed", message="PyTorchJob failed: master exited 1"
    )
    assert job.wait(10) == "FAILED"
    assert job.error == "PyTorchJob failed: master exited 1"
    steps = {s.name: s.status for s in job.record.steps}
    assert steps == {"node-0": "FAILED", "node-1": "SKIPPED", "node-2": "SKIPPED"}
    assert "ValueError: bad shard" in job.logs("node-0")


def test_cancel_deletes_the_job_and_its_pods(k8s: FakeKubernetes, store: Store) -> None:
    job = kfnb.train(fit, backend="trainjob", image="img:1")
    name = job.record.remote["name"]
    job.cancel()
    assert k8s.deleted == [("trainjobs", name, "Foreground")]
    assert k8s.objects == {}
    assert job.status == "CANCELED"
    assert job.wait(5) == "CANCELED"


def test_a_cluster_without_the_crd_is_a_clear_error(k8s: FakeKubernetes, store: Store) -> None:
    k8s.missing_kinds.add("trainjobs")
    with pytest.raises(BackendError) as err:
        kfnb.train(fit, backend="trainjob", image="img:1")
    message = str(err.value)
    assert message.startswith("could not create TrainJob kfnb-fit-")
    assert "in namespace team-a: HTTP 404" in message
    assert "kubectl get crd trainjobs.trainer.kubeflow.org" in message
    assert "--backend pytorchjob" in message
    (run,) = store.list_runs()
    assert run.status == "FAILED"  # recorded, and said


def test_a_cluster_job_needs_an_image(k8s: FakeKubernetes, store: Store) -> None:
    with pytest.raises(BackendError, match="a cluster job needs an image"):
        kfnb.train(fit, backend="pytorchjob")
    assert k8s.objects == {}


def test_a_dry_run_returns_the_manifest_and_sends_nothing(
    k8s: FakeKubernetes, store: Store
) -> None:
    manifest = kfnb.train(
        fit, backend="trainjob", nodes=2, gpus_per_node=2, image="img:1", dry_run=True
    )
    assert manifest["kind"] == "TrainJob"
    assert manifest["spec"]["trainer"]["resourcesPerNode"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert k8s.requests == [] and store.list_runs() == []
    with pytest.raises(BackendError, match="the local backend has nothing to show"):
        kfnb.train(fit, dry_run=True)


def test_kfnb_train_dry_run_prints_a_valid_manifest(
    k8s: FakeKubernetes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from kfnb.cli import main

    script = tmp_path / "fit.py"
    script.write_text("print('hi')\n")
    argv = ["train", str(script), "--backend", "trainjob", "--nodes", "2", "--gpus", "2"]
    argv += ["--image", "img:1", "--namespace", "ml", "--dry-run", "--", "--lr", "0.1"]
    assert main(argv) == 0
    manifest = yaml.safe_load(capsys.readouterr().out)
    assert manifest["metadata"]["namespace"] == "ml"
    assert manifest["spec"]["trainer"]["numNodes"] == 2
    assert k8s.requests == []
    assert k8s._validate("trainjobs", manifest) is None  # the CRD schema, made strict
    program = unpacked(manifest)["program.py"].decode()
    assert "argv=['--lr', '0.1']" in program


def test_kfnb_cancel_and_the_servers_refresher_reach_a_cluster_job(
    k8s: FakeKubernetes, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfnb.cli import main
    from kfnb.server_ext.remote import refresh_open_runs
    from kfnb.settings import Settings

    job = kfnb.train(fit, backend="pytorchjob", image="img:1")
    name = job.record.remote["name"]
    k8s.set_conditions("pytorchjobs", "team-a", name, "Running")
    assert refresh_open_runs(store, Settings.load(), {}) == [job.id]  # as the panel's server does
    assert store.get_run(job.id).status == "RUNNING"
    assert main(["cancel", job.id]) == 0
    assert capsys.readouterr().out.strip() == f"run {job.id}: CANCELED"
    assert k8s.deleted == [("pytorchjobs", name, "Foreground")]


def test_a_metric_line_cut_between_two_refreshes_is_read_once_whole(
    k8s: FakeKubernetes, store: Store
) -> None:
    job = kfnb.train(fit, backend="trainjob", image="img:1")
    name = job.record.remote["name"]
    labels = {
        "jobset.sigs.k8s.io/jobset-name": name,
        "batch.kubernetes.io/job-completion-index": "0",
    }
    line = 'KFNB_METRIC {"name": "loss", "value": 2.5, "step": 0}\n'
    k8s.add_pod("team-a", f"{name}-0", labels, "Running", "node", "start\n" + line[:20])
    k8s.set_conditions("trainjobs", "team-a", name, "Running")
    job.refresh()
    assert job.logs("node-0") == "start\n" and job.metrics == {}  # the cut line waits
    k8s.set_pod("team-a", f"{name}-0", log="start\n" + line)
    job.refresh()
    job.refresh()
    assert job.logs("node-0") == "start\n" + line
    assert job.metrics == {"loss": [2.5]}
