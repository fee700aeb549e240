"""The cluster training scenario against a real Kubernetes cluster with Kubeflow Trainer (or the
Training Operator): submit a two-node job, follow it to its end with metrics and node logs,
and cancel another.

Skipped unless ``KUBECONFIG`` and ``KFNB_TRAIN_IMAGE`` (an image holding Python, torch and this
kfnb, see images/runtime.Dockerfile) are set; ``KFNB_TRAIN_BACKEND`` picks ``trainjob``
(default) or ``pytorchjob``. Nothing here can run on machines without a cluster.
"""

from __future__ import annotations

import os

import pytest

import kfnb

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not (os.environ.get("KUBECONFIG") and os.environ.get("KFNB_TRAIN_IMAGE")),
        reason="needs a real cluster (KUBECONFIG) and a training image (KFNB_TRAIN_IMAGE)",
    ),
]

BACKEND = os.environ.get("KFNB_TRAIN_BACKEND", "trainjob")
POINTS = [0.5, 1.5, 2.0]


def fit(epochs: int = 3) -> None:
    import torch.distributed as dist

    import kfnb as k

    dist.init_process_group("gloo")
    for epoch in range(epochs):
        k.log_metric("loss", sum(POINTS) / (epoch + 1), step=epoch)
    print("rank", dist.get_rank(), "of", dist.get_world_size())
    dist.destroy_process_group()


def test_a_two_node_job_runs_to_its_end() -> None:
    job = kfnb.train(fit, backend=BACKEND, nodes=2, image=os.environ["KFNB_TRAIN_IMAGE"], wait=True)
    assert job.status == "SUCCEEDED", job.error
    assert job.metrics["loss"] == [4.0, 2.0, 4.0 / 3]
    assert "of 2" in job.logs("node-0")


def test_cancel_deletes_the_job() -> None:
    job = kfnb.train(fit, {"epochs": 10**6}, backend=BACKEND, image=os.environ["KFNB_TRAIN_IMAGE"])
    job.cancel()
    assert job.wait(120) == "CANCELED"
