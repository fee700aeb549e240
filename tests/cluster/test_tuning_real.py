"""A Katib study against a real Kubernetes cluster with Katib: a grid over the example churn
notebook's parameters runs to its end with every trial and Katib's optimum in the store, and
another study is stopped.

Skipped unless ``KUBECONFIG`` and ``KFNB_TUNE_IMAGE`` (an image holding Python, numpy and this
kfnb, see images/runtime.Dockerfile) are set; ``KFNB_TUNE_NAMESPACE`` names a namespace
labelled ``katib.kubeflow.org/metrics-collector-injection: enabled`` (default: the kubeconfig
context's). Nothing here can run on machines without a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import kfnb

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not (os.environ.get("KUBECONFIG") and os.environ.get("KFNB_TUNE_IMAGE")),
        reason="needs a real cluster with Katib (KUBECONFIG) and an image (KFNB_TUNE_IMAGE)",
    ),
]

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "tune_churn.ipynb"


def options() -> dict[str, str]:
    found = {"image": os.environ["KFNB_TUNE_IMAGE"]}
    if os.environ.get("KFNB_TUNE_NAMESPACE"):
        found["namespace"] = os.environ["KFNB_TUNE_NAMESPACE"]
    return found


def test_a_katib_study_runs_to_its_end() -> None:
    study = kfnb.tune(
        NOTEBOOK,
        space={"features": kfnb.Choice(["basic", "interactions"])},
        params={"epochs": 20},
        objective="accuracy",
        direction="maximize",
        algorithm="grid",
        trials=2,
        parallel=2,
        backend="katib",
        options=options(),
    )
    study.wait(1800)
    view = study.view()
    assert view["status"] == "SUCCEEDED", view
    assert view["counts"]["SUCCEEDED"] == 2
    assert 0.5 < study.best_value <= 1.0
    assert (study.record.remote or {}).get("best")  # Katib's currentOptimalTrial


def test_stop_deletes_the_experiment() -> None:
    study = kfnb.tune(
        NOTEBOOK,
        space={"learning_rate": kfnb.Float(0.01, 1.0, log=True)},
        objective="accuracy",
        direction="maximize",
        trials=50,
        backend="katib",
        options=options(),
    )
    study.stop()
    assert study.wait(300).status == "CANCELED"
