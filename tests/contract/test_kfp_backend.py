"""The ``kfp`` backend against the validating KFP API mock (kfp_mock.py), driven by kfp.Client.

Nothing executes: the mock plays the KFP server (runs advance one tick per GET of the run), and
these tests check what kfnb sends, what it records in the run store, and what it says when the
server cannot be reached or refuses.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import kfp_mock
import pytest
import yaml
from kfp_mock import ApiError, KfpApiMock

import kfnb
from kfnb.api import PipelineRun
from kfnb.backends.kfp import KfpBackend, KfpError, KfpRunHandle, connect
from kfnb.config import ConfigError
from kfnb.settings import Settings
from kfnb.tracking import Run, Store

pytestmark = pytest.mark.filterwarnings("ignore:This client only works:FutureWarning")

STEPS = ["make", "double", "square", "total"]
RUNS = "/apis/v2beta1/runs"


def submit(notebook: Path, **options: Any) -> PipelineRun:
    options.setdefault("poll_interval", 0.01)
    return kfnb.run(notebook, options.pop("params", {"n": 5}), backend="kfp", **options)


def remote_of(record: Run) -> dict[str, Any]:
    assert record.remote is not None, f"run {record.id} is not a remote run"
    return record.remote


def created_runs(api: KfpApiMock) -> list[dict[str, Any]]:
    return [r.body for r in api.requests if r.method == "POST" and r.path == RUNS]


def step_statuses(store: Store, run_id: str) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for event in store.events(run_id):
        if event.kind == "step":
            seen.setdefault(event.data["step"], []).append(event.data["status"])
    return seen


def write_config(settings: dict[str, Any]) -> None:
    Path(os.environ["KFNB_CONFIG"]).write_text(yaml.safe_dump(settings))


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- submit and follow ----------------------------------------------------------------------
def test_submit_runs_to_success_and_records_the_remote_run(
    kfp_api: KfpApiMock, fanout_notebook: Path
) -> None:
    run = submit(fanout_notebook, host=kfp_api.url, namespace="alice", experiment="exp1")

    record = run.store.get_run(run.id)
    assert record.status == "SUCCEEDED"
    assert record.backend == "kfp"
    assert {s.name: s.status for s in record.steps} == dict.fromkeys(STEPS, "SUCCEEDED")
    assert step_statuses(run.store, run.id) == {s: ["RUNNING", "SUCCEEDED"] for s in STEPS}
    run_events = [e.data["status"] for e in run.store.events(run.id) if e.kind == "run"]
    assert run_events == ["PENDING", "RUNNING", "SUCCEEDED"]

    remote = record.remote
    assert remote is not None
    assert remote["id"] in kfp_api.runs
    assert kfp_api.runs[remote["id"]]["state"] == "SUCCEEDED"
    assert remote["id"] in remote["url"] and remote["url"].startswith(kfp_api.url)
    assert remote["host"] == kfp_api.url
    assert remote["namespace"] == "alice"
    assert remote["experiment"] == "exp1"
    assert remote["tasks"] == {s: s for s in STEPS}

    [experiment] = kfp_api.experiments.values()
    assert experiment["display_name"] == "exp1"
    assert experiment["namespace"] == "alice"
    assert remote["experiment_id"] == experiment["experiment_id"]

    [body] = created_runs(kfp_api)
    assert body["experiment_id"] == experiment["experiment_id"]
    assert body["runtime_config"]["parameters"] == {"n": 5, "name": "x"}
    spec = body["pipeline_spec"].get("pipeline_spec", body["pipeline_spec"])
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(STEPS)
    deps = {name: sorted(t.get("dependentTasks", [])) for name, t in tasks.items()}
    assert deps == {
        "make": [],
        "double": ["make"],
        "square": ["make"],
        "total": ["double", "square"],
    }
    assert spec["root"]["inputDefinitions"]["parameters"].keys() == {"n", "name"}

    artifacts = {a["name"]: a for a in run.store.artifacts(run.id)}
    assert "pipeline.yaml" in artifacts
    saved = Path(artifacts["pipeline.yaml"]["path"])
    assert yaml.safe_load(saved.read_text())["root"]["dag"]["tasks"].keys() == set(STEPS)

    again = submit(fanout_notebook, host=kfp_api.url, namespace="alice", experiment="exp1")
    assert again.status == "SUCCEEDED"
    assert len(kfp_api.experiments) == 1
    assert remote_of(again.record)["experiment_id"] == experiment["experiment_id"]
    assert len(kfp_api.runs) == 2
    assert [b["experiment_id"] for b in created_runs(kfp_api)] == [experiment["experiment_id"]] * 2
    assert kfp_api.violations == []


def test_a_failed_task_fails_its_step_and_skips_what_depends_on_it(
    kfp_api: KfpApiMock, fanout_notebook: Path
) -> None:
    kfp_api.fail_task = "double"
    run = submit(fanout_notebook, host=kfp_api.url)

    record = run.store.get_run(run.id)
    assert record.status == "FAILED"
    steps = {s.name: s for s in record.steps}
    assert {n: s.status for n, s in steps.items()} == {
        "make": "SUCCEEDED",
        "double": "FAILED",
        "square": "SUCCEEDED",
        "total": "SKIPPED",
    }
    kfp_task = next(
        t
        for t in kfp_api.runs[remote_of(record)["id"]]["run_details"]["task_details"]
        if t["display_name"] == "double"
    )
    assert steps["double"].error is not None
    assert steps["double"].error["message"] == kfp_task["error"]["message"]
    assert "double" in (record.error or "")
    assert kfp_api.violations == []


def test_cancel_terminates_the_run_on_kfp(kfp_api: KfpApiMock, fanout_notebook: Path) -> None:
    kfp_api.hold = True
    run = submit(fanout_notebook, host=kfp_api.url, wait=False)
    assert run.status == "PENDING"
    assert run.handle is not None
    for _ in range(10):
        run.handle.refresh()
        if run.record.step("make").status == "RUNNING":
            break
    assert run.record.step("make").status == "RUNNING"
    assert run.status == "RUNNING"

    run.cancel()
    run.wait(timeout=10)

    record = run.record
    assert record.status == "CANCELED"
    assert {s.status for s in record.steps} <= {"CANCELED", "SKIPPED"}
    assert record.step("make").status == "CANCELED"
    kfp_id = remote_of(record)["id"]
    assert kfp_api.runs[kfp_id]["state"] == "CANCELED"
    assert [(r.method, r.path) for r in kfp_api.requests if r.path.endswith(":terminate")] == [
        ("POST", f"{RUNS}/{kfp_id}:terminate")
    ]
    assert kfp_api.violations == []


# -- authentication and connection errors -----------------------------------------------------
def test_bearer_token_is_required_and_sent(
    kfp_api: KfpApiMock, fanout_notebook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kfp_api.require_token = "s3cret"
    with pytest.raises(kfnb.KfnbError) as caught:
        submit(fanout_notebook, host=kfp_api.url, namespace="alice")
    assert isinstance(caught.value, KfpError)
    message = str(caught.value)
    assert kfp_api.url in message
    assert "HTTP 401" in message
    assert "KFNB_KFP_TOKEN" in message
    assert "\n" not in message
    assert Store().list_runs() == []
    assert kfp_api.runs == {} and kfp_api.experiments == {}

    before = len(kfp_api.requests)
    monkeypatch.setenv("KFNB_KFP_TOKEN", "s3cret")
    run = submit(fanout_notebook, host=kfp_api.url, namespace="alice")
    assert run.status == "SUCCEEDED"
    sent = kfp_api.requests[before:]
    assert len(sent) > 4
    assert {r.headers.get("authorization") for r in sent} == {"Bearer s3cret"}
    assert kfp_api.violations == []


def test_session_cookie_is_required_and_sent(
    kfp_api: KfpApiMock, fanout_notebook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kfp_api.require_cookie = "authservice_session=abc123"
    with pytest.raises(KfpError) as caught:
        submit(fanout_notebook, host=kfp_api.url, namespace="alice")
    message = str(caught.value)
    assert kfp_api.url in message and "HTTP 401" in message
    assert "KFNB_KFP_COOKIES" in message
    assert Store().list_runs() == []

    before = len(kfp_api.requests)
    monkeypatch.setenv("KFNB_KFP_COOKIES", "authservice_session=abc123")
    run = submit(fanout_notebook, host=kfp_api.url, namespace="alice")
    assert run.status == "SUCCEEDED"
    sent = kfp_api.requests[before:]
    assert len(sent) > 4
    assert all("authservice_session=abc123" in r.headers.get("cookie", "") for r in sent)
    assert kfp_api.violations == []


def test_a_namespace_the_user_may_not_use_is_a_clear_error(
    kfp_api: KfpApiMock, fanout_notebook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Multi-user KFP answers 403 (PERMISSION_DENIED) for a profile the user is not in."""
    monkeypatch.setitem(kfp_mock._HTTP, 7, 403)  # google.rpc PERMISSION_DENIED

    def forbidden(call: kfp_mock.Call) -> dict[str, Any]:
        raise ApiError(7, f"user is not authorized in namespace {call.query.get('namespace')}")

    monkeypatch.setitem(kfp_api._ops, "ExperimentService_ListExperiments", forbidden)
    monkeypatch.setitem(kfp_api._ops, "ExperimentService_CreateExperiment", forbidden)
    with pytest.raises(KfpError) as caught:
        submit(fanout_notebook, host=kfp_api.url, namespace="bob")
    message = str(caught.value)
    assert kfp_api.url in message and "HTTP 403" in message
    assert "namespace bob" in message and "--namespace" in message
    assert "\n" not in message
    assert Store().list_runs() == []
    assert kfp_api.runs == {}


def test_a_refused_run_creation_reads_well(
    kfp_api: KfpApiMock, fanout_notebook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(kfp_mock._HTTP, 7, 403)

    def forbidden(call: kfp_mock.Call) -> dict[str, Any]:
        raise ApiError(7, "user is not authorized")

    monkeypatch.setitem(kfp_api._ops, "RunService_CreateRun", forbidden)
    with pytest.raises(KfpError) as caught:
        submit(fanout_notebook, host=kfp_api.url, namespace="bob")
    message = str(caught.value)
    assert "HTTP 403: user is not authorized" in message
    assert Store().list_runs() == []
    assert " in (HTTP" not in message and " to (HTTP" not in message


def test_nothing_listening_is_cannot_connect(fanout_notebook: Path) -> None:
    host = f"http://127.0.0.1:{refused_port()}"
    with pytest.raises(KfpError) as caught:
        submit(fanout_notebook, host=host, namespace="alice")
    message = str(caught.value)
    assert host in message
    assert "cannot connect" in message
    assert "namespace alice" in message
    assert Store().list_runs() == []


def test_no_host_anywhere_says_how_to_give_one(fanout_notebook: Path) -> None:
    with pytest.raises(KfpError, match=r"--host.*KFNB_KFP_HOST"):
        submit(fanout_notebook)


# -- where the endpoint comes from ------------------------------------------------------------
def test_in_cluster_defaults_and_service_account_token(
    kfp_api: KfpApiMock, fanout_notebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "sa" / "token"
    token.parent.mkdir()
    token.write_text("sa-token-1\n")
    pod_namespace = tmp_path / "sa" / "namespace"
    monkeypatch.setattr(connect, "POD_NAMESPACE_PATH", str(pod_namespace))

    outside = connect.resolve(host=kfp_api.url)  # no pod: no service-account token
    assert outside.token_path is None and outside.namespace is None
    with pytest.raises(KfpError, match="no Kubeflow Pipelines host"):
        connect.resolve()

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KF_PIPELINES_SA_TOKEN_PATH": str(token)}
    endpoint = connect.resolve(env=pod)
    assert endpoint.host == connect.IN_CLUSTER_HOST
    assert endpoint.token_path == str(token)
    assert endpoint.token is None and endpoint.namespace is None

    pod_namespace.write_text("bob\n")
    assert connect.resolve(env=pod).namespace == "bob"
    assert connect.resolve(namespace="alice", env=pod).namespace == "alice"
    assert connect.resolve(token="mine", env=pod).token_path is None  # explicit credentials win

    kfp_api.require_token = "sa-token-1"
    before = len(kfp_api.requests)
    run = submit(fanout_notebook, host=kfp_api.url)
    assert run.status == "SUCCEEDED"
    assert remote_of(run.record)["namespace"] == "bob"
    sent = kfp_api.requests[before:]
    assert len(sent) > 4
    assert {r.headers.get("authorization") for r in sent} == {"Bearer sa-token-1"}
    [experiment] = kfp_api.experiments.values()
    assert experiment["namespace"] == "bob"
    assert kfp_api.violations == []


def test_config_file_gives_host_and_namespace(kfp_api: KfpApiMock, fanout_notebook: Path) -> None:
    write_config({"kfp": {"host": kfp_api.url, "namespace": "carol", "experiment": "from-config"}})
    run = submit(fanout_notebook)
    assert run.status == "SUCCEEDED"
    remote = run.record.remote
    assert remote is not None
    assert remote["host"] == kfp_api.url and remote["namespace"] == "carol"
    [experiment] = kfp_api.experiments.values()
    assert (experiment["display_name"], experiment["namespace"]) == ("from-config", "carol")
    assert kfp_api.violations == []


def test_explicit_values_win_over_environment_and_config(
    kfp_api: KfpApiMock, fanout_notebook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config({"kfp": {"host": f"http://127.0.0.1:{refused_port()}", "namespace": "carol"}})
    monkeypatch.setenv("KFNB_KFP_HOST", f"http://127.0.0.1:{refused_port()}")
    monkeypatch.setenv("KFNB_KFP_NAMESPACE", "dave")
    run = submit(fanout_notebook, host=kfp_api.url, namespace="erin")
    assert run.status == "SUCCEEDED"
    assert remote_of(run.record)["host"] == kfp_api.url
    assert remote_of(run.record)["namespace"] == "erin"
    assert [e["namespace"] for e in kfp_api.experiments.values()] == ["erin"]


def test_environment_wins_over_the_config_file(
    kfp_api: KfpApiMock, fanout_notebook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config({"kfp": {"host": kfp_api.url, "namespace": "carol"}})
    monkeypatch.setenv("KFNB_KFP_NAMESPACE", "dave")
    assert KfpBackend.configure(Settings.load(), {}).endpoint().namespace == "dave"
    run = submit(fanout_notebook)
    assert remote_of(run.record)["namespace"] == "dave"


def test_environment_host_wins_over_the_config_file(
    kfp_api: KfpApiMock, fanout_notebook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config({"kfp": {"host": f"http://127.0.0.1:{refused_port()}"}})
    monkeypatch.setenv("KFNB_KFP_HOST", kfp_api.url)
    run = submit(fanout_notebook)
    assert remote_of(run.record)["host"] == kfp_api.url


def test_config_file_sets_poll_interval_and_cache() -> None:
    write_config({"kfp": {"poll_interval": 0.5, "cache": False}})
    cfg = KfpBackend.configure(Settings.load(), {})
    assert (cfg.poll_interval, cfg.cache) == (0.5, False)
    given = {"poll_interval": 2.0, "cache": True}
    assert KfpBackend.configure(Settings.load(), given).poll_interval == 2.0


def test_unknown_config_key_suggests_the_right_one(fanout_notebook: Path) -> None:
    write_config({"kfp": {"hots": "http://127.0.0.1:1"}})
    with pytest.raises(ConfigError) as caught:
        submit(fanout_notebook)
    message = str(caught.value)
    assert "'hots'" in message and "did you mean 'host'" in message
    assert Store().list_runs() == []


# -- following a run from elsewhere ----------------------------------------------------------
def test_get_run_from_a_fresh_store_follows_the_remote_run(
    kfp_api: KfpApiMock, fanout_notebook: Path, kfnb_env: Path
) -> None:
    run = submit(fanout_notebook, host=kfp_api.url, namespace="alice", wait=False)
    assert run.status == "PENDING"
    gets_before = sum(r.method == "GET" and r.path.startswith(RUNS) for r in kfp_api.requests)
    assert gets_before == 0

    write_config({"kfp": {"poll_interval": 0.01}})
    other = kfnb.get_run(run.id[:12], store=Store(kfnb_env))  # as another process would
    assert other.id == run.id
    assert isinstance(other.handle, KfpRunHandle)
    assert other.handle.remote["id"] == remote_of(run.record)["id"]
    other.wait(timeout=10)
    assert other.status == "SUCCEEDED"
    assert {s.status for s in other.steps} == {"SUCCEEDED"}
    kfp_id = remote_of(run.record)["id"]
    assert kfp_api.runs[kfp_id]["state"] == "SUCCEEDED"
    assert run.status == "SUCCEEDED"  # the same store, seen from the first handle

    done = kfnb.get_run(run.id, store=Store(kfnb_env))
    assert done.handle is None  # an ended run is not followed
    assert kfp_api.violations == []


def test_following_survives_a_failed_poll_but_not_three(
    kfp_api: KfpApiMock, fanout_notebook: Path
) -> None:
    run = submit(fanout_notebook, host=kfp_api.url, namespace="alice", wait=False)
    handle = run.handle
    assert isinstance(handle, KfpRunHandle)
    real_get_run = handle.client.get_run
    failures = iter([True, False] * 2 + [False] * 100)

    def flaky(run_id: str) -> Any:
        if next(failures):
            raise ConnectionRefusedError("the API went away for a moment")
        return real_get_run(run_id)

    handle.client.get_run = flaky
    assert run.wait(timeout=10).status == "SUCCEEDED"
    warnings = [e.data["message"] for e in run.store.events(run.id) if e.kind == "warning"]
    assert len(warnings) == 2 and all("will retry" in w for w in warnings)

    second = submit(fanout_notebook, host=kfp_api.url, namespace="alice", wait=False)
    assert isinstance(second.handle, KfpRunHandle)

    def down(run_id: str) -> Any:
        raise ConnectionRefusedError("gone")

    second.handle.client.get_run = down
    with pytest.raises(KfpError, match=r"cannot read the state of run .*cannot connect"):
        second.wait(timeout=10)
    assert second.status == "PENDING"  # kfnb does not guess: the run goes on on the cluster
