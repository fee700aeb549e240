"""Katib studies with the real ``kubernetes`` client against the loopback fake API server
(k8s_fake.py), which checks every Experiment as Katib's webhook does (katib_api.py: the official
swagger made strict, the webhook's rules, the trial template's Job or TrainJob against its own
schema): what kfnb sends, how trials and the optimum come back into the store, the budget,
cancel, resume, errors and the dry run. And the trial's pod for real: the entry that runs a
notebook (real kernels) or a training program (torchrun) prints the metrics Katib's StdOut
collector reads, under the shell line Katib wraps the container's command in."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from k8s_fake import FakeKubernetes
from katib_api import OLD_FILTER, collect, experiment_problems, stdout_wrapped
from nbformat.v4 import new_code_cell, new_notebook

import kfnb
from kfnb.backends import BackendError
from kfnb.tracking import Store
from kfnb.tuning import NotResumable, SpaceError, Study, attach, study_view
from kfnb.tuning.katib_study import KatibStudy

#: where the kfnb these tests import lives (a checkout, or the installed wheel): the pod's too
KFNB_PATH = Path(kfnb.__file__).resolve().parents[1]
NS = "team-a"
SPACE = {
    "lr": kfnb.Float(1e-4, 0.1, log=True),
    "units": kfnb.Int(8, 64, step=8),
    "act": kfnb.Choice(["relu", "tanh"]),
    "dropout": kfnb.Choice([0.1, 0.2]),
}


def write(folder: Path, name: str, *cells: tuple[str, str]) -> Path:
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        }
    )
    nb.cells = [new_code_cell(source, metadata={"tags": [tag]}) for tag, source in cells]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    """epochs of made-up accuracy (logged per epoch), the final accuracy and loss."""
    return write(
        tmp_path / "project",
        "train",
        (
            "pipeline-parameters",
            "lr = 0.01\nunits = 32\nact = 'relu'\ndropout = 0.1\nepochs = 3\nsleep = 0.0",
        ),
        (
            "step:fit",
            "import time\nimport kfnb\n"
            "bonus = 0.01 if act == 'tanh' else 0.0\n"
            "for i in range(epochs):\n"
            "    time.sleep(sleep)\n"
            "    accuracy = round(1 - lr / (i + 1) + bonus - dropout / 10, 6)\n"
            "    kfnb.log_metric('accuracy', accuracy, step=i)\n"
            "loss = lr * units",
        ),
        ("pipeline-metrics", "print(accuracy)\nprint(loss)"),
    )


@pytest.fixture
def k8s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as fake:
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig")))
        yield fake


@pytest.fixture
def store(kfnb_env: Path) -> Store:
    return Store(kfnb_env)


def fit(lr: float = 0.1, layers: int = 2, optimizer: str = "adam") -> None:
    import kfnb as k

    for epoch in range(2):
        k.log_metric("loss", lr * layers / (epoch + 1), step=epoch)


def start(notebook: Path, store: Store, **kw: Any) -> Study:
    args: dict[str, Any] = {
        "space": SPACE,
        "objective": "accuracy",
        "direction": "maximize",
        "trials": 4,
        "parallel": 2,
        "backend": "katib",
        "options": {"image": "registry.example/kfnb:1"},
        "store": store,
    }
    args.update(kw)
    study = kfnb.tune(notebook, **args)
    assert isinstance(study.handle, KatibStudy)
    study.handle.poll = 0.02
    return study


def sent(k8s: FakeKubernetes) -> dict[str, Any]:
    (experiment,) = [o for (plural, _, _), o in k8s.objects.items() if plural == "experiments"]
    return experiment


def container(experiment: dict[str, Any]) -> dict[str, Any]:
    job = experiment["spec"]["trialTemplate"]["trialSpec"]
    (found,) = job["spec"]["template"]["spec"]["containers"]
    return dict(found)


def unpacked(packed: str) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(packed))) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def assign(experiment: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The trial's job as Katib makes it: values pasted into the template's JSON text."""
    text = json.dumps(experiment["spec"]["trialTemplate"]["trialSpec"])
    for name, value in values.items():
        text = text.replace(f"${{trialParameters.{name}}}", value)
    assert "${trialParameters." not in text
    return dict(json.loads(text))


# -- what kfnb sends ----------------------------------------------------------------------------
CASES = {
    "tpe-all-kinds-of-parameters": {"space": SPACE},
    "random-with-a-seed": {
        "space": {"lr": kfnb.Float(0.001, 0.1), "act": kfnb.Choice(["relu", "tanh", "gelu"])},
        "algorithm": "random",
        "seed": 7,
    },
    "grid-stepped": {
        "space": {
            "lr": kfnb.Float(0.01, 0.05, step=0.01),
            "units": kfnb.Int(8, 16, step=8),
            "act": kfnb.Choice(["relu", "tanh"]),
        },
        "algorithm": "grid",
        "trials": 50,  # more than the grid's 20 points: Katib refuses that
        "parallel": 3,
    },
    "cmaes-numeric": {
        "space": {"lr": kfnb.Float(1e-4, 0.1, log=True), "units": kfnb.Int(8, 64)},
        "algorithm": "cmaes",
    },
    "qmc-as-sobol": {
        "space": {"lr": kfnb.Float(0.0, 1.0), "units": kfnb.Int(1, 3)},
        "algorithm": "qmc",
    },
    "median-pruning-and-max-failed": {
        "space": SPACE,
        "prune": kfnb.Median(startup_trials=5, warmup_steps=2),
        "max_failed": 3,
        "parallel": 9,  # more than the trials: Katib wants parallel <= max
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_notebook_experiment_is_one_katib_takes(
    case: str, notebook: Path, k8s: FakeKubernetes, store: Store
) -> None:
    args: dict[str, Any] = {"trials": 5, "parallel": 2, **CASES[case]}
    exp = kfnb.tune(
        notebook,
        objective="accuracy",
        direction="maximize",
        backend="katib",
        dry_run=True,
        options={"image": "img:1", "cpu": "2", "memory": "4Gi", "gpus": 1},
        **args,
    )
    assert experiment_problems(exp) == []
    spec = exp["spec"]
    space = args["space"]
    assert [p["name"] for p in spec["parameters"]] == list(space)
    assert spec["parameters"] == [d.to_katib(n) for n, d in space.items()]
    template = spec["trialTemplate"]
    assert [p["reference"] for p in template["trialParameters"]] == list(space)
    assert template["primaryContainerName"] == "kfnb-trial"
    assert (
        template["successCondition"] == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    )
    assert template["failureCondition"] == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert spec["objective"]["objectiveMetricName"] == "accuracy"
    assert spec["objective"]["additionalMetricNames"] == ["loss"]
    assert spec["parallelTrialCount"] <= spec["maxTrialCount"]
    c = container(exp)
    assert c["command"] == ["python", "-m", "kfnb.tuning.trial_pod", "notebook"]
    env = {e["name"]: e["value"] for e in c["env"]}
    for name in space:  # the values reach the pod as variables, never on the command line
        assert env[f"KFNB_PARAM_{name}"] == f"${{trialParameters.{name}}}"
    assert c["resources"]["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert k8s.requests == [] and store.list_runs() == []
    if case == "grid-stepped":
        assert spec["algorithm"] == {"algorithmName": "grid"}
        assert spec["maxTrialCount"] == 20 and spec["parallelTrialCount"] == 3
    if case == "random-with-a-seed":
        assert spec["algorithm"]["algorithmSettings"] == [{"name": "random_state", "value": "7"}]
        assert spec["parameters"][1]["feasibleSpace"] == {"list": ["relu", "tanh", "gelu"]}
    if case == "qmc-as-sobol":
        assert spec["algorithm"]["algorithmName"] == "sobol"
    if case == "median-pruning-and-max-failed":
        assert spec["earlyStopping"] == {
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "5"},
                {"name": "start_step", "value": "3"},
            ],
        }
        assert (spec["maxTrialCount"], spec["parallelTrialCount"], spec["maxFailedTrialCount"]) == (
            5,
            5,
            3,
        )
    if case == "tpe-all-kinds-of-parameters":
        lr, units, act, dropout = spec["parameters"]
        assert lr == {
            "name": "lr",
            "parameterType": "double",
            "feasibleSpace": {"min": "0.0001", "max": "0.1", "distribution": "logUniform"},
        }
        assert units["parameterType"] == "int" and units["feasibleSpace"]["step"] == "8"
        assert act == {
            "name": "act",
            "parameterType": "categorical",
            "feasibleSpace": {"list": ["relu", "tanh"]},
        }
        assert dropout["parameterType"] == "discrete"


def test_a_function_study_is_an_experiment_of_trainjobs(k8s: FakeKubernetes) -> None:
    exp = kfnb.tune(
        fit,
        space={"lr": kfnb.Float(0.001, 0.1, log=True), "optimizer": kfnb.Choice(["adam", "sgd"])},
        params={"layers": 3},
        objective="loss",
        backend="katib",
        dry_run=True,
        options={"image": "ml:1", "nodes": "2", "gpus_per_node": 4, "procs_per_node": 4},
    )
    assert experiment_problems(exp) == []  # the TrainJob checked against its CRD, made strict
    template = exp["spec"]["trialTemplate"]
    assert template["primaryContainerName"] == "node"
    assert template["primaryPodLabels"] == {
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "batch.kubernetes.io/job-completion-index": "0",
    }
    job = template["trialSpec"]
    assert job["kind"] == "TrainJob" and "name" not in job["metadata"]
    trainer = job["spec"]["trainer"]
    assert trainer["command"] == ["python", "-m", "kfnb.tuning.trial_pod", "train"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 4)
    assert trainer["resourcesPerNode"] == {"limits": {"nvidia.com/gpu": "4"}}
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert env["KFNB_PARAM_lr"] == "${trialParameters.lr}"
    files = unpacked(env["KFNB_PROGRAM"])
    assert "def fit(" in files["program.py"].decode()
    # the fixed argument and the untuned default travel; the tuned ones come from the trial
    assert json.loads(files["args.json"]) == {"layers": 3}
    assert k8s.requests == []
    with pytest.raises(BackendError, match="need an image with Python, torch and kfnb"):
        kfnb.tune(
            fit,
            space={"lr": kfnb.Float(0.01, 0.1)},
            objective="loss",
            backend="katib",
            dry_run=True,
        )


def test_the_checks_can_fail(notebook: Path) -> None:
    """What the fake refuses, as Katib would: the checks are not vacuous."""
    good = kfnb.tune(notebook, space=SPACE, objective="accuracy", backend="katib", dry_run=True)
    assert experiment_problems(good) == []

    def broken(change: Any) -> list[str]:
        exp = json.loads(json.dumps(good))
        change(exp)
        return experiment_problems(exp)

    def categorical_in_distribution(e: dict[str, Any]) -> None:  # Katib SDK's old bug
        e["spec"]["parameters"][2]["feasibleSpace"] = {"distribution": ["relu", "tanh"]}

    def unknown_job_field(e: dict[str, Any]) -> None:
        e["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
            "cmd"
        ] = ["x"]

    def undeclared_placeholder(e: dict[str, Any]) -> None:
        e["spec"]["trialTemplate"]["trialSpec"]["metadata"]["labels"]["x"] = "${trialParameters.y}"

    def long_name(e: dict[str, Any]) -> None:
        e["metadata"]["name"] = "kfnb-" + "x" * 40

    def parallel_over_max(e: dict[str, Any]) -> None:
        e["spec"]["parallelTrialCount"] = 99

    def no_primary_container(e: dict[str, Any]) -> None:
        e["spec"]["trialTemplate"]["primaryContainerName"] = "main"

    for change in (
        categorical_in_distribution,
        unknown_job_field,
        undeclared_placeholder,
        long_name,
        parallel_over_max,
        no_primary_container,
    ):
        assert broken(change), change.__name__


@pytest.mark.parametrize(
    ("kw", "error", "says"),
    [
        ({"algorithm": "grid"}, SpaceError, "grid search needs a step for the float 'lr'"),
        ({"algorithm": "cmaes"}, SpaceError, "two or more numeric parameters and no choices"),
        ({"initial": [{"lr": 0.01}]}, BackendError, "Katib cannot start a study from given"),
        ({"options": {"imag": "x"}}, BackendError, "did you mean 'image'?"),
        ({"options": {"nodes": 2}}, BackendError, "shape a training function's TrainJob"),
        ({"options": {"name": "My_Study"}}, BackendError, "cannot name a Katib experiment"),
        ({"options": {"resume_policy": "Always"}}, BackendError, "unknown resume_policy"),
        ({"objective": "val.acc"}, BackendError, "characters its names cannot hold"),
    ],
)
def test_what_katib_cannot_do_fails_before_anything_is_sent(
    kw: dict[str, Any],
    error: type[Exception],
    says: str,
    notebook: Path,
    k8s: FakeKubernetes,
    store: Store,
) -> None:
    args: dict[str, Any] = {"space": SPACE, "objective": "accuracy", "backend": "katib", **kw}
    with pytest.raises(error) as err:
        kfnb.tune(notebook, store=store, **args)
    assert says in str(err.value)
    assert k8s.requests == [] and store.list_runs() == []


# -- the study on the cluster -------------------------------------------------------------------
def test_a_study_is_submitted_and_its_trials_come_back(
    notebook: Path, k8s: FakeKubernetes, store: Store
) -> None:
    study = start(notebook, store, params={"epochs": 5})
    record = study.record
    name = f"kfnb-train-{record.id.rsplit('-', 1)[-1]}"
    assert (record.kind, record.backend, record.status) == ("tune", "katib", "PENDING")
    assert record.remote == {"kind": "Experiment", "namespace": NS, "name": name}
    assert record.runner_pid is None  # recover() leaves it to the cluster
    assert record.params == {"epochs": 5}
    assert record.spec["study"]["objective"] == "accuracy"
    assert [s["name"] for s in record.spec["pipeline"]["steps"]] == ["fit"]
    exp = sent(k8s)
    assert exp["metadata"]["name"] == name and exp["metadata"]["namespace"] == NS
    assert exp["metadata"]["labels"]["kfnb.io/run-id"] == record.id
    pod_labels = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["metadata"]
    assert pod_labels["labels"]["kfnb.io/run-id"] == record.id
    create = next(r for r in k8s.requests if r["method"] == "POST")
    assert create["path"] == f"/apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments"
    assert create["headers"]["authorization"] == "Bearer t0ken"
    env = {e["name"]: e["value"] for e in container(exp)["env"]}
    shipped = nbformat.reads(unpacked(env["KFNB_TRIAL_NOTEBOOK"])["train.ipynb"].decode(), 4)
    assert [c.source for c in shipped.cells] == [c.source for c in nbformat.read(notebook, 4).cells]
    assert json.loads(env["KFNB_TRIAL"])["fixed"] == {"epochs": 5}

    assert study.refresh() == "PENDING"
    k8s.set_conditions("experiments", NS, name, "Created", "Running")
    k8s.add_trial(
        NS,
        name,
        f"{name}-b",
        {"lr": "0.0123", "units": "16", "act": "tanh", "dropout": "0.2"},
        "Created",
        "Running",
        created="2026-12-07T00:00:02Z",
    )
    k8s.add_trial(
        NS,
        name,
        f"{name}-a",
        {"lr": "0.05", "units": "8", "act": "relu", "dropout": "0.1"},
        "Created",
        "Running",
        "Succeeded",
        observation={"accuracy": "0.93", "loss": "0.4"},
        created="2026-12-07T00:00:01Z",
    )
    k8s.add_trial(
        NS,
        name,
        f"{name}-c",
        {"lr": "0.001", "units": "64", "act": "relu", "dropout": "0.1"},
        "Created",
        "Running",
        "EarlyStopped",
        observation={"accuracy": "0.5"},
        created="2026-12-07T00:00:03Z",
    )
    k8s.add_trial(
        NS,
        name,
        f"{name}-d",
        {"lr": "0.09", "units": "24", "act": "tanh", "dropout": "0.2"},
        "Created",
        "Failed",
        message="Job has reached the specified backoff limit",
        created="2026-12-07T00:00:04Z",
    )
    k8s.set_status(
        "experiments",
        NS,
        name,
        currentOptimalTrial={
            "bestTrialName": f"{name}-a",
            "parameterAssignments": [
                {"name": "lr", "value": "0.05"},
                {"name": "units", "value": "8"},
                {"name": "act", "value": "relu"},
                {"name": "dropout", "value": "0.1"},
            ],
            "observation": {
                "metrics": [{"name": "accuracy", "latest": "0.93", "min": "0.9", "max": "0.93"}]
            },
        },
        trials=4,
    )
    assert study.refresh() == "RUNNING"
    study.refresh()  # again: each trial is created once, then followed
    view = study_view(store, study.id)
    rows = {r["name"]: r for r in view["trials"]}
    assert [(r["number"], r["status"]) for r in view["trials"]] == [
        (0, "SUCCEEDED"),
        (1, "RUNNING"),
        (2, "PRUNED"),
        (3, "FAILED"),
    ]
    first = rows["trial-0"]
    assert first["params"] == {"lr": 0.05, "units": 8, "act": "relu", "dropout": 0.1}
    assert isinstance(first["params"]["units"], int) and isinstance(
        first["params"]["dropout"], float
    )
    assert first["value"] == 0.93 and first["remote"] == {
        "kind": "Trial",
        "namespace": NS,
        "name": f"{name}-a",
    }
    assert store.get_run(first["id"]).metrics == {"accuracy": 0.93, "loss": 0.4}
    assert rows["trial-1"]["params"] == {"lr": 0.0123, "units": 16, "act": "tanh", "dropout": 0.2}
    assert rows["trial-2"]["value"] is None
    assert "backoff limit" in rows["trial-3"]["error"]
    trial_specs = [store.get_run(r["id"]).spec["trial"] for r in view["trials"]]
    assert [t["name"] for t in trial_specs] == [f"{name}-{x}" for x in "abcd"]
    assert all(store.get_run(r["id"]).runner_pid is None for r in view["trials"])
    assert view["counts"] == {
        "PENDING": 0,
        "RUNNING": 1,
        "SUCCEEDED": 1,
        "PRUNED": 1,
        "FAILED": 1,
        "CANCELED": 0,
    }
    assert view["best"]["name"] == "trial-0" and view["best"]["value"] == 0.93
    best = store.get_run(study.id).remote["best"]
    assert best == {
        "trial": f"{name}-a",
        "run": first["id"],
        "number": 0,
        "params": {"lr": 0.05, "units": 8, "act": "relu", "dropout": 0.1},
        "metrics": {"accuracy": 0.93},
    }
    events = [e.data for e in store.events(study.id) if e.kind == "trial"]
    assert {(e["trial"], e["status"]) for e in events} >= {
        (0, "SUCCEEDED"),
        (2, "PRUNED"),
        (3, "FAILED"),
    }

    # the running trial ends better; Katib moves its optimum; the experiment succeeds
    k8s.add_trial(
        NS,
        name,
        f"{name}-b",
        {"lr": "0.0123", "units": "16", "act": "tanh", "dropout": "0.2"},
        "Created",
        "Running",
        "Succeeded",
        observation={"accuracy": "0.97", "loss": "0.2"},
        created="2026-12-07T00:00:02Z",
    )
    k8s.set_status("experiments", NS, name, currentOptimalTrial={"bestTrialName": f"{name}-b"})
    k8s.set_conditions("experiments", NS, name, "Succeeded", reason="ExperimentMaxTrialsReached")
    assert study.wait(5).status == "SUCCEEDED"
    assert study.best_params == {"lr": 0.0123, "units": 16, "act": "tanh", "dropout": 0.2}
    assert study.best_value == 0.97
    assert store.get_run(study.id).remote["best"]["run"] == rows["trial-1"]["id"]
    assert len(study.trials) == 4
    # another process follows it through the cluster alike
    again = attach(study.id)
    assert isinstance(again.handle, KatibStudy) and again.refresh() == "SUCCEEDED"


def test_trials_without_the_objective_fail_with_the_reason(
    notebook: Path, k8s: FakeKubernetes, store: Store
) -> None:
    study = start(notebook, store)
    name = study.record.remote["name"]
    k8s.set_conditions("experiments", NS, name, "Running")
    # numbered as Katib created them, whatever their names (random suffixes) say
    k8s.add_trial(
        NS,
        name,
        f"{name}-a",
        {"lr": "0.01", "units": "8", "act": "relu", "dropout": "0.1"},
        "Created",
        "Running",
        "MetricsUnavailable",
        observation={"accuracy": "unavailable"},
        created="2026-12-07T00:00:03Z",
    )
    k8s.add_trial(
        NS,
        name,
        f"{name}-b",
        {"lr": "0.02", "units": "8", "act": "relu", "dropout": "0.1"},
        "Created",
        "Running",
        "Killed",
        created="2026-12-07T00:00:02Z",
    )
    k8s.add_trial(
        NS,
        name,
        f"{name}-c",
        {"lr": "0.03", "units": "8", "act": "relu", "dropout": "0.1"},
        created="2026-12-07T00:00:01Z",
    )
    study.refresh()
    rows = {r["number"]: r for r in study.trials}
    assert [rows[n]["params"]["lr"] for n in range(3)] == [0.03, 0.02, 0.01]
    assert rows[0]["status"] == "PENDING" and rows[1]["status"] == "CANCELED"
    assert rows[2]["status"] == "FAILED"
    assert "katib.kubeflow.org/metrics-collector-injection=enabled" in rows[2]["error"]
    assert store.get_run(rows[2]["id"]).metrics == {}  # "unavailable" is no number
    k8s.set_conditions("experiments", NS, name, "Succeeded", reason="ExperimentMaxTrialsReached")
    study.refresh()
    assert study.status == "FAILED"  # as a local study: no trial succeeded
    assert "no trial succeeded" in study.record.error
    assert store.get_run(rows[0]["id"]).status == "CANCELED"  # nothing stays open


def test_add_trials_raises_the_experiments_budget(
    notebook: Path, k8s: FakeKubernetes, store: Store
) -> None:
    study = start(notebook, store, trials=4)
    name = study.record.remote["name"]
    k8s.set_conditions("experiments", NS, name, "Running")
    study.refresh()
    study.add_trials(3)
    patch = [r for r in k8s.requests if r["method"] == "PATCH"]
    assert [r["path"] for r in patch] == [
        f"/apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments/{name}"
    ]
    headers = {k.lower(): v for k, v in patch[0]["headers"].items()}
    assert headers["content-type"] == "application/merge-patch+json"
    assert sent(k8s)["spec"]["maxTrialCount"] == 7  # accepted by the webhook's update rules
    assert [e.data for e in store.events(study.id) if e.kind == "budget"] == [
        {"maxTrialCount": 7, "was": 4}
    ]
    study.refresh()
    assert len([r for r in k8s.requests if r["method"] == "PATCH"]) == 1  # once


def test_stop_deletes_the_experiment_and_keeps_the_records(
    notebook: Path, k8s: FakeKubernetes, store: Store
) -> None:
    study = start(notebook, store)
    name = study.record.remote["name"]
    k8s.set_conditions("experiments", NS, name, "Running")
    k8s.add_trial(
        NS,
        name,
        f"{name}-a",
        {"lr": "0.05", "units": "8", "act": "relu", "dropout": "0.1"},
        "Created",
        "Running",
        "Succeeded",
        observation={"accuracy": "0.9"},
    )
    k8s.add_trial(
        NS,
        name,
        f"{name}-b",
        {"lr": "0.01", "units": "8", "act": "relu", "dropout": "0.1"},
        "Created",
        "Running",
    )
    study.stop()
    assert k8s.deleted == [("experiments", name, "Foreground")]
    assert k8s.objects == {}  # the trials went with it
    assert study.status == "CANCELED" and study.wait(1).status == "CANCELED"
    assert [(r["number"], r["status"]) for r in study.trials] == [(0, "SUCCEEDED"), (1, "CANCELED")]
    assert study.best_value == 0.9
    with pytest.raises(NotResumable, match="no longer exists") as err:
        study.resume()
    assert "start a new study" in str(err.value)


def test_kfnb_cancel_and_the_servers_refresher_reach_a_katib_study(
    notebook: Path, k8s: FakeKubernetes, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfnb.cli import main
    from kfnb.server_ext.remote import refresh_open_runs
    from kfnb.settings import Settings

    study = start(notebook, store)
    name = study.record.remote["name"]
    k8s.set_conditions("experiments", NS, name, "Running")
    k8s.add_trial(
        NS,
        name,
        f"{name}-a",
        {"lr": "0.05", "units": "8", "act": "relu", "dropout": "0.1"},
        "Created",
        "Running",
    )
    refreshed = refresh_open_runs(store, Settings.load(), {})  # as the panel's server does
    assert refreshed == [study.id]
    (trial,) = study.trials
    assert study.status == "RUNNING" and trial["status"] == "RUNNING"
    assert study.id in refresh_open_runs(store, Settings.load(), {})  # the trial is remote too
    assert main(["cancel", study.id]) == 0
    assert capsys.readouterr().out.strip() == f"run {study.id}: CANCELED"
    assert k8s.deleted == [("experiments", name, "Foreground")]
    assert store.get_run(trial["id"]).status == "CANCELED"


def test_a_study_that_reached_its_budget_goes_on_with_more_trials(
    notebook: Path, k8s: FakeKubernetes, store: Store
) -> None:
    options = {"image": "i:1", "resume_policy": "LongRunning"}
    study = start(notebook, store, trials=2, options=options)
    name = study.record.remote["name"]
    for letter, accuracy in (("a", "0.8"), ("b", "0.85")):
        k8s.add_trial(
            NS,
            name,
            f"{name}-{letter}",
            {"lr": "0.05", "units": "8", "act": "relu", "dropout": "0.1"},
            "Created",
            "Running",
            "Succeeded",
            observation={"accuracy": accuracy},
        )
    k8s.set_conditions("experiments", NS, name, "Succeeded", reason="ExperimentMaxTrialsReached")
    k8s.set_status("experiments", NS, name, trials=2)
    assert study.wait(5).status == "SUCCEEDED"
    study.add_trials(2)  # ended: it resumes, and Katib restarts the experiment
    assert sent(k8s)["spec"]["maxTrialCount"] == 4  # the webhook let it restart
    record = study.record
    assert record.status == "RUNNING" and record.runner_pid is None
    k8s.set_conditions("experiments", NS, name, "Restarting")
    assert study.refresh() == "RUNNING"
    assert store.recover() == []


def test_a_finished_study_goes_on_only_where_katib_can(
    notebook: Path, k8s: FakeKubernetes, store: Store
) -> None:
    never = start(notebook, store)  # resumePolicy Never (Katib's default)
    name = never.record.remote["name"]
    k8s.add_trial(
        NS,
        name,
        f"{name}-a",
        {"lr": "0.05", "units": "8", "act": "relu", "dropout": "0.1"},
        "Created",
        "Running",
        "Succeeded",
        observation={"accuracy": "0.8"},
    )
    k8s.set_conditions("experiments", NS, name, "Succeeded", reason="ExperimentMaxTrialsReached")
    assert never.wait(5).status == "SUCCEEDED"
    with pytest.raises(NotResumable, match="its resumePolicy is Never") as err:
        never.add_trials(1)
    assert "resume_policy='LongRunning'" in str(err.value)
    assert sent(k8s)["spec"]["maxTrialCount"] == 4  # untouched

    k8s.objects.clear()
    failed = start(notebook, store, options={"image": "i:1", "resume_policy": "FromVolume"})
    failed_name = failed.record.remote["name"]
    k8s.set_conditions(
        "experiments",
        NS,
        failed_name,
        "Failed",
        reason="ExperimentFailed",
        message="maxFailedTrialCount reached",
    )
    assert failed.wait(5).status == "FAILED"
    assert failed.record.error == "maxFailedTrialCount reached"
    with pytest.raises(NotResumable, match="Katib cannot restart Experiment") as err:
        failed.resume()
    assert "(ExperimentFailed: maxFailedTrialCount reached)" in str(err.value)
    assert not [r for r in k8s.requests if r["method"] == "PATCH"]


def test_a_cluster_without_katib_is_a_clear_error(
    notebook: Path, k8s: FakeKubernetes, store: Store
) -> None:
    k8s.missing_kinds.add("experiments")
    with pytest.raises(BackendError) as err:
        start(notebook, store)
    message = str(err.value)
    assert message.startswith("could not create Experiment kfnb-train-")
    assert f"in namespace {NS}: HTTP 404" in message
    assert "is Katib installed (kubectl get crd experiments.kubeflow.org)" in message
    (run,) = store.list_runs()
    assert run.status == "FAILED"


def test_a_namespace_that_does_not_exist_is_named(
    notebook: Path, k8s: FakeKubernetes, store: Store
) -> None:
    k8s.namespaces = {NS}
    with pytest.raises(BackendError) as err:
        start(notebook, store, options={"image": "i:1", "namespace": "nope"})
    assert 'HTTP 404: namespaces "nope" not found' in str(err.value)
    assert "does namespace nope exist?" in str(err.value)


def test_a_function_study_on_the_cluster(k8s: FakeKubernetes, store: Store) -> None:
    study = kfnb.tune(
        fit,
        space={"lr": kfnb.Float(0.001, 0.1, log=True), "layers": kfnb.Int(1, 4)},
        objective="loss",
        backend="katib",
        options={"image": "ml:1"},
        store=store,
    )
    name = study.record.remote["name"]
    assert study.record.spec["study"]["target"] == {"function": "fit"}
    assert sent(k8s)["spec"]["trialTemplate"]["trialSpec"]["kind"] == "TrainJob"
    k8s.add_trial(
        NS,
        name,
        f"{name}-a",
        {"lr": "0.004", "layers": "3"},
        "Created",
        "Running",
        "Succeeded",
        observation={"loss": "0.012"},
    )
    study.refresh()
    (row,) = study.trials
    assert row["params"] == {"lr": 0.004, "layers": 3} and row["value"] == 0.012


def test_dry_run_returns_and_prints_the_experiment(
    notebook: Path,
    tmp_path: Path,
    k8s: FakeKubernetes,
    store: Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import yaml

    from kfnb.cli import main

    exp = kfnb.tune(notebook, space=SPACE, objective="accuracy", backend="katib", dry_run=True)
    assert exp["kind"] == "Experiment" and exp["metadata"]["namespace"] == NS  # the context's
    assert container(exp)["image"].startswith("kfnb/runtime:")
    space = tmp_path / "space.yaml"
    space.write_text("lr: {float: [0.0001, 0.1], log: true}\nact: {choice: [relu, tanh]}\n")
    argv = ["tune", str(notebook), "--space", str(space), "--objective", "accuracy", "--maximize"]
    argv += ["--backend", "katib", "--image", "img:2", "--namespace", "ml", "--dry-run"]
    assert main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["metadata"]["namespace"] == "ml" and container(printed)["image"] == "img:2"
    assert experiment_problems(printed) == []
    assert k8s.requests == [] and store.list_runs() == []


# -- the trial's pod, for real ------------------------------------------------------------------
@pytest.fixture
def pod_tmp() -> Iterator[Path]:
    """The pod's temporary folder: short, as kernels' socket paths must be."""
    folder = Path(tempfile.mkdtemp(prefix="kfnb-pod-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def pod_env(job: dict[str, Any], tmp_path: Path, pod_tmp: Path) -> dict[str, str]:
    """The primary container's environment (with this checkout importable)."""
    if job["kind"] == "Job":
        (c,) = job["spec"]["template"]["spec"]["containers"]
        given = c["env"]
    else:
        given = job["spec"]["trainer"]["env"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFNB_", "PET_"))}
    env.update({e["name"]: e["value"] for e in given})
    env["PYTHONPATH"] = os.pathsep.join([str(KFNB_PATH), env.get("PYTHONPATH", "")])
    env["KFNB_HOME"] = str(tmp_path / "pod-home")  # the manifest's /tmp/kfnb-home, here
    env["TMPDIR"] = str(pod_tmp)
    return env


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (as psutil's ``Children()`` finds them)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def katib_command(job: dict[str, Any], folder: Path, early_stopping: bool = False) -> list[str]:
    """The primary container's command as Katib's webhook wraps it, run with this Python."""
    c = (
        job["spec"]["template"]["spec"]["containers"][0]
        if job["kind"] == "Job"
        else job["spec"]["trainer"]
    )
    command = [sys.executable if part == "python" else part for part in c["command"]]
    return stdout_wrapped(command, str(folder), early_stopping)


def test_the_trial_pod_prints_what_katibs_collector_reads(
    notebook: Path, tmp_path: Path, k8s: FakeKubernetes, pod_tmp: Path
) -> None:
    exp = kfnb.tune(
        notebook,
        space=SPACE,
        params={"epochs": 3},
        objective="accuracy",
        direction="maximize",
        backend="katib",
        dry_run=True,
    )
    job = assign(exp, {"lr": "0.05", "units": "16", "act": "tanh", "dropout": "0.2"})
    folder = tmp_path / "katib"
    folder.mkdir()
    done = subprocess.run(
        katib_command(job, folder), env=pod_env(job, tmp_path, pod_tmp), cwd=tmp_path, timeout=240
    )
    assert done.returncode == 0, (folder / "metrics.log").read_text()
    assert list(folder.glob("*.pid")) and next(folder.glob("*.pid")).read_text() == "completed\n"
    lines = (folder / "metrics.log").read_text().splitlines()
    found = collect(lines, ["accuracy", "loss"])
    # 1 - lr/(i+1) + 0.01 (tanh) - dropout/10, per epoch; then the pipeline's metrics
    assert [(n, float(v)) for _, n, v in found] == [
        ("accuracy", pytest.approx(0.94)),
        ("accuracy", pytest.approx(0.965)),
        ("accuracy", pytest.approx(0.973333)),
        ("accuracy", pytest.approx(0.973333)),
        ("loss", pytest.approx(0.8)),
    ]
    assert all(stamp is not None for stamp, _, _ in found)  # timed, for median stopping
    stamps = [stamp for stamp, n, _ in found if n == "accuracy"]
    assert stamps == sorted(stamps)
    assert collect(lines, ["accuracy"], (OLD_FILTER,)) == [f for f in found if f[1] == "accuracy"]


def test_a_failing_trial_pod_exits_non_zero(
    tmp_path: Path, k8s: FakeKubernetes, pod_tmp: Path
) -> None:
    broken = write(
        tmp_path / "project",
        "broken",
        ("pipeline-parameters", "lr = 0.1"),
        (
            "step:fit",
            "import kfnb\nkfnb.log_metric('accuracy', 0.5, step=0)\nraise ValueError('diverged')",
        ),
        ("pipeline-metrics", "print(lr)"),
    )
    exp = kfnb.tune(
        broken,
        space={"lr": kfnb.Float(0.01, 1.0)},
        objective="accuracy",
        backend="katib",
        dry_run=True,
    )
    job = assign(exp, {"lr": "0.3"})
    folder = tmp_path / "katib"
    folder.mkdir()
    done = subprocess.run(
        katib_command(job, folder), env=pod_env(job, tmp_path, pod_tmp), timeout=240
    )
    log = (folder / "metrics.log").read_text()
    assert done.returncode != 0
    assert not list(folder.glob("*.pid"))  # Katib's "completed" mark is not written
    assert "ValueError: diverged" in log
    assert [n for _, n, _ in collect(log.splitlines(), ["accuracy"])] == ["accuracy"]


def test_katib_stopping_a_trial_early_stops_its_run(
    notebook: Path, tmp_path: Path, k8s: FakeKubernetes, pod_tmp: Path
) -> None:
    exp = kfnb.tune(
        notebook,
        space=SPACE,
        params={"epochs": 60, "sleep": 0.25},
        objective="accuracy",
        backend="katib",
        dry_run=True,
        prune="median",
    )
    job = assign(exp, {"lr": "0.05", "units": "16", "act": "tanh", "dropout": "0.2"})
    folder = tmp_path / "katib"
    folder.mkdir()
    env = pod_env(job, tmp_path, pod_tmp)
    shell = subprocess.Popen(katib_command(job, folder, early_stopping=True), env=env)
    metrics = folder / "metrics.log"
    deadline = time.monotonic() + 120
    while "accuracy=" not in (metrics.read_text() if metrics.exists() else ""):
        assert time.monotonic() < deadline and shell.poll() is None
        time.sleep(0.1)
    # as Katib's collector does: mark the main process early-stopped, SIGTERM its one child
    (folder / f"{shell.pid}.pid").write_text("early-stopped")
    (child,) = children_of(shell.pid)
    os.kill(child, signal.SIGTERM)
    assert shell.wait(60) == 0
    text = metrics.read_text()
    assert "stopped (SIGTERM): cancelling the run" in text
    store = Store(env["KFNB_HOME"])
    (run,) = store.list_runs()
    assert run.status == "CANCELED"
    assert len(collect(text.splitlines(), ["accuracy"])) < 60


def test_the_training_trial_runs_the_function_with_the_trials_values(
    tmp_path: Path, k8s: FakeKubernetes, pod_tmp: Path
) -> None:
    pytest.importorskip("torch")
    exp = kfnb.tune(
        fit,
        space={"lr": kfnb.Float(0.001, 0.1, log=True), "optimizer": kfnb.Choice(["adam", "sgd"])},
        params={"layers": 3},
        objective="loss",
        backend="katib",
        dry_run=True,
        options={"image": "ml:1"},
    )
    job = assign(exp, {"lr": "0.02", "optimizer": "sgd"})
    folder = tmp_path / "katib"
    folder.mkdir()
    env = pod_env(job, tmp_path, pod_tmp)
    env["PET_STANDALONE"] = "1"  # torchrun alone on this machine (the runtime sets PET_* there)
    command = katib_command(job, folder)
    command[-1] = command[-1].replace(
        "kfnb.tuning.trial_pod train", f"kfnb.tuning.trial_pod train --dir {tmp_path / 'prog'}"
    )
    done = subprocess.run(command, env=env, timeout=240)
    log = (folder / "metrics.log").read_text()
    assert done.returncode == 0, log
    assert json.loads((tmp_path / "prog" / "args.json").read_text()) == {
        "layers": 3,
        "lr": 0.02,
        "optimizer": "sgd",
    }
    found = collect(log.splitlines(), ["loss"])
    assert [float(v) for _, _, v in found] == [pytest.approx(0.06), pytest.approx(0.03)]
    assert all(stamp is not None for stamp, _, _ in found)
    assert "KFNB_METRIC" in log  # the program's own output passes through
