"""The contract scenario against a real Kubeflow Pipelines endpoint: submit, follow, cancel.

Skipped unless ``KFNB_KFP_HOST`` is set (with ``KFNB_KFP_NAMESPACE``, ``KFNB_KFP_TOKEN`` or
``KFNB_KFP_COOKIES`` as the deployment needs, and ``KFNB_KFP_IMAGE``: an image holding this kfnb,
see images/runtime.Dockerfile). Nothing here can run on machines without a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import kfnb

pytestmark = [
    pytest.mark.kfp_cluster,
    pytest.mark.skipif(
        not os.environ.get("KFNB_KFP_HOST"),
        reason="needs a real Kubeflow Pipelines endpoint (KFNB_KFP_HOST)",
    ),
]


def notebook(tmp_path: Path, seconds: int = 0) -> Path:
    cells = [
        ("pipeline-parameters", "n = 3"),
        ("step:make", "values = list(range(n))"),
        ("step:double", f"import time\ntime.sleep({seconds})\ndoubled = [2 * v for v in values]"),
        ("step:square", "squared = [v * v for v in values]"),
        ("step:total", "total = sum(doubled) + sum(squared)"),
        ("pipeline-metrics", "print(total)"),
    ]
    nb = new_notebook(
        cells=[new_code_cell(src, metadata={"tags": [tag]}) for tag, src in cells],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    path = tmp_path / "kfnb_contract.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFNB_HOME", str(tmp_path / "home"))


def test_submit_and_follow_to_the_end(tmp_path: Path) -> None:
    run = kfnb.run(
        notebook(tmp_path),
        {"n": 4},
        backend="kfp",
        wait=False,
        image=os.environ.get("KFNB_KFP_IMAGE"),
        experiment="kfnb-contract",
        poll_interval=5.0,
    )
    assert run.record.remote and run.record.remote["id"]
    run.wait(timeout=1800)
    assert run.status == "SUCCEEDED", run.record.error
    assert {s.name: s.status for s in run.steps} == dict.fromkeys(
        ["make", "double", "square", "total"], "SUCCEEDED"
    )


def test_cancel_terminates_on_the_cluster(tmp_path: Path) -> None:
    run = kfnb.run(
        notebook(tmp_path, seconds=600),
        backend="kfp",
        wait=False,
        image=os.environ.get("KFNB_KFP_IMAGE"),
        experiment="kfnb-contract",
        poll_interval=5.0,
    )
    run.cancel()
    run.wait(timeout=900)
    assert run.status == "CANCELED"
