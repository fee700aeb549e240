"""The KFP API mock, driven by the real kfp.Client: URLs, verbs, bodies and headers are the SDK's.

No ``from __future__ import annotations`` here: kfp reads the components' annotations.
"""

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import kfp
import pytest
from kfp import dsl
from kfp_mock import KfpApiMock
from kfp_server_api import ApiException, V2beta1Run

pytestmark = pytest.mark.filterwarnings("ignore:This client only works:FutureWarning")
FINAL = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}


@dsl.component(base_image="python:3.11")
def make(msg: str) -> str:
    return msg


@dsl.component(base_image="python:3.11")
def show(text: str) -> None:
    print(text)


@dsl.pipeline(name="tiny")
def tiny(msg: str = "hi") -> None:
    show(text=make(msg=msg).output)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("pipeline") / "tiny.yaml"
    kfp.compiler.Compiler().compile(tiny, str(path))
    return str(path)


def submit(client: kfp.Client, package: str, **kw: Any) -> str:
    result = client.create_run_from_pipeline_package(
        package, arguments={"msg": "hello"}, experiment_name="exp", namespace="team-a", **kw
    )
    return str(result.run_id)


def poll(client: kfp.Client, run_id: str, limit: int = 20) -> list[V2beta1Run]:
    seen = [client.get_run(run_id)]
    while seen[-1].state not in FINAL:
        assert len(seen) < limit, [r.state for r in seen]
        seen.append(client.get_run(run_id))
    return seen


def tasks(run: V2beta1Run) -> dict[str, str]:
    return {t.display_name: t.state for t in run.run_details.task_details}


def raw(url: str, method: str = "GET", body: Any = None) -> tuple[int, dict[str, Any]]:
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_construction_asks_healthz_unless_a_namespace_is_given(kfp_api: KfpApiMock) -> None:
    kfp.Client(host=kfp_api.url)
    kfp.Client(host=kfp_api.url, namespace="kubeflow")  # the default value counts as "not given"
    assert [(r.method, r.path) for r in kfp_api.requests] == [("GET", "/apis/v2beta1/healthz")] * 2
    kfp.Client(host=kfp_api.url, namespace="team-a")
    assert len(kfp_api.requests) == 2
    assert kfp_api.violations == []


def test_create_experiment_is_get_or_create(kfp_api: KfpApiMock) -> None:
    client = kfp.Client(host=kfp_api.url, namespace="team-a")
    first = client.create_experiment("exp", namespace="team-a")
    again = client.create_experiment("exp", namespace="team-a")
    assert again.experiment_id == first.experiment_id
    assert client.get_experiment(experiment_id=first.experiment_id).namespace == "team-a"
    assert first.storage_state == "AVAILABLE" and first.created_at is not None
    lookup, create = kfp_api.requests[0], kfp_api.requests[1]
    assert (lookup.method, lookup.path) == ("GET", "/apis/v2beta1/experiments")
    assert lookup.query["namespace"] == "team-a"
    assert json.loads(lookup.query["filter"]) == {  # proto3 JSON: enum number, lowerCamelCase
        "predicates": [{"operation": 1, "key": "display_name", "stringValue": "exp"}]
    }
    assert (create.method, create.body) == ("POST", {"display_name": "exp", "namespace": "team-a"})
    with pytest.raises(ValueError, match="No experiment"):
        client.get_experiment(experiment_name="exp", namespace="other")
    with pytest.raises(ApiException) as err:
        client.get_experiment(experiment_id="nope")
    assert err.value.status == 404 and json.loads(err.value.body)["code"] == 5
    assert kfp_api.violations == []


@pytest.mark.parametrize("ticks", [1, 2])
def test_run_progresses_in_dependency_order(kfp_api: KfpApiMock, package: str, ticks: int) -> None:
    kfp_api.ticks_per_task = ticks
    client = kfp.Client(host=kfp_api.url, namespace="team-a")
    run_id = submit(client, package, service_account="runner")
    sent = kfp_api.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/apis/v2beta1/runs")
    assert sent.body["runtime_config"] == {"parameters": {"msg": "hello"}}
    assert sent.body["service_account"] == "runner"
    assert set(sent.body["pipeline_spec"]["root"]["dag"]["tasks"]) == {"make", "show"}
    assert kfp_api.runs[run_id]["state"] == "PENDING"

    seen = poll(client, run_id)
    states = [(r.state, tasks(r)["make"], tasks(r)["show"]) for r in seen]
    assert states == [("RUNNING", "RUNNING", "PENDING")] * ticks + [
        ("RUNNING", "SUCCEEDED", "RUNNING")
    ] * ticks + [("SUCCEEDED", "SUCCEEDED", "SUCCEEDED")]
    final = seen[-1]
    assert set(tasks(final)) == {"root", "make", "show"}
    assert final.finished_at is not None and final.experiment_id
    for task in final.run_details.task_details:
        assert task.run_id == run_id and task.start_time <= task.end_time
    assert kfp_api.violations == []


def test_failing_task_skips_downstream(kfp_api: KfpApiMock, package: str) -> None:
    kfp_api.fail_task = "make"
    client = kfp.Client(host=kfp_api.url, namespace="team-a")
    final = poll(client, submit(client, package))[-1]
    assert final.state == "FAILED" and "make" in final.error.message
    assert tasks(final) == {"root": "FAILED", "make": "FAILED", "show": "SKIPPED"}
    failed = next(t for t in final.run_details.task_details if t.display_name == "make")
    assert "make" in failed.error.message
    assert kfp_api.violations == []


def test_terminate_cancels(kfp_api: KfpApiMock, package: str) -> None:
    kfp_api.hold = True
    client = kfp.Client(host=kfp_api.url, namespace="team-a")
    run_id = submit(client, package)
    for _ in range(3):
        assert tasks(client.get_run(run_id)) == {
            "root": "RUNNING",
            "make": "RUNNING",
            "show": "PENDING",
        }
    assert client.terminate_run(run_id) == {}
    assert kfp_api.requests[-1][:2] == ("POST", f"/apis/v2beta1/runs/{run_id}:terminate")
    assert client.list_runs(namespace="team-a").runs[0].state == "CANCELING"  # lists do not tick
    final = client.get_run(run_id)
    assert final.state == "CANCELED"
    assert tasks(final) == {"root": "CANCELED", "make": "CANCELED", "show": "SKIPPED"}
    # kfp 2.17's wait_for_run_completion does not count CANCELED as finished: it times out.
    with pytest.raises(TimeoutError):
        client.wait_for_run_completion(run_id, timeout=0.1, sleep_duration=0.01)  # type: ignore[arg-type]
    assert kfp_api.violations == []


def test_list_runs_filters_sorts_and_pages(kfp_api: KfpApiMock, package: str) -> None:
    client = kfp.Client(host=kfp_api.url, namespace="team-a")
    ids = [
        str(
            client.create_run_from_pipeline_package(
                package, run_name=f"r{i}", experiment_name="exp"
            ).run_id
        )
        for i in range(3)
    ]
    exp_id = kfp_api.runs[ids[0]]["experiment_id"]
    page = client.list_runs(experiment_id=exp_id, page_size=2, sort_by="display_name desc")
    assert [r.display_name for r in page.runs] == ["r2", "r1"] and page.total_size == 3
    rest = client.list_runs(
        experiment_id=exp_id,
        page_size=2,
        sort_by="display_name desc",
        page_token=page.next_page_token,
    )
    assert [r.run_id for r in rest.runs] == ids[:1] and not rest.next_page_token
    one = json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "string_value": "r1"}]}
    )
    assert [r.run_id for r in client.list_runs(filter=one).runs] == [ids[1]]
    assert client.list_runs(namespace="elsewhere").runs is None
    assert kfp_api.violations == []


def test_bearer_token(kfp_api: KfpApiMock) -> None:
    kfp_api.require_token = "secret"
    with pytest.raises(ApiException) as err:
        kfp.Client(host=kfp_api.url, namespace="team-a").list_experiments()
    assert err.value.status == 401 and json.loads(err.value.body)["code"] == 16
    client = kfp.Client(host=kfp_api.url, existing_token="secret")  # healthz passes too
    client.list_experiments()
    assert kfp_api.requests[-1].headers["authorization"] == "Bearer secret"
    with pytest.raises(ApiException, match="401"):
        kfp.Client(host=kfp_api.url, existing_token="wrong", namespace="n").list_experiments()
    assert kfp_api.violations == []


def test_service_account_token_file(kfp_api: KfpApiMock, tmp_path: Path) -> None:
    """The in-pod path: ``credentials=`` re-reads the projected token file for every request."""
    from kfp.client import ServiceAccountTokenVolumeCredentials

    kfp_api.require_token = "sa-token"
    (tmp_path / "token").write_text("sa-token")
    creds = ServiceAccountTokenVolumeCredentials(str(tmp_path / "token"))
    kfp.Client(host=kfp_api.url, credentials=creds).list_experiments()
    assert {r.headers["authorization"] for r in kfp_api.requests} == {"Bearer sa-token"}
    assert kfp_api.violations == []


def test_unauthorised_construction_retries_healthz(
    kfp_api: KfpApiMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a namespace kfp.Client asks healthz; a 401 there is retried 5 times with 5 s
    sleeps and then surfaces as a TimeoutError, not as an ApiException."""
    monkeypatch.setattr("kfp.client.client.time.sleep", lambda s: None)
    kfp_api.require_token = "secret"
    with pytest.raises(TimeoutError, match="healthz"):
        kfp.Client(host=kfp_api.url)
    assert [r.path for r in kfp_api.requests] == ["/apis/v2beta1/healthz"] * 5


def test_session_cookie(kfp_api: KfpApiMock) -> None:
    kfp_api.require_cookie = "authservice_session=abc"
    with pytest.raises(ApiException) as err:
        kfp.Client(host=kfp_api.url, namespace="team-a").list_experiments()
    assert err.value.status == 401
    client = kfp.Client(host=kfp_api.url, cookies="other=1; authservice_session=abc")
    client.list_experiments()
    assert kfp_api.requests[-1].headers["cookie"] == "other=1; authservice_session=abc"
    assert kfp_api.violations == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        (
            "POST",
            "/apis/v2beta1/runs",
            {"display_name": "r", "pipeline_spec": {}, "bogus_field": 1},
            400,
            "'bogus_field' was unexpected",
        ),
        ("POST", "/apis/v2beta1/runs", {"display_name": 5}, 400, "run.display_name: 5 is not"),
        ("POST", "/apis/v2beta1/experiments", b"{not json", 400, "not JSON"),
        ("GET", "/apis/v2beta1/runs?page_size=ten", None, 400, "'page_size': 'ten' is not an int"),
        ("GET", "/apis/v2beta1/runs?pagesize=1", None, 400, "'pagesize' is not defined"),
        (
            "GET",
            "/apis/v2beta1/experiments?filter=%7B%22predicates%22%3A1%7D",
            None,
            400,
            "filter.predicates: 1 is not of type 'array'",
        ),
        ("GET", "/apis/v1beta1/runs", None, 404, "not an operation"),
        ("DELETE", "/apis/v2beta1/healthz", None, 404, "not an operation"),
    ],
)
def test_invalid_requests_are_rejected_and_recorded(
    kfp_api: KfpApiMock, method: str, path: str, body: Any, status: int, needle: str
) -> None:
    code, answer = raw(kfp_api.url + path, method, body)
    assert (code, answer["code"]) == (status, {400: 3, 404: 5}[status])
    assert needle in answer["message"]
    assert len(kfp_api.violations) == 1 and needle in kfp_api.violations[0]


def test_unknown_ids_and_unsimulated_operations_are_not_violations(kfp_api: KfpApiMock) -> None:
    assert raw(f"{kfp_api.url}/apis/v2beta1/runs/nope")[0] == 404
    assert raw(f"{kfp_api.url}/apis/v2beta1/runs/nope:terminate", "POST")[0] == 404
    assert raw(f"{kfp_api.url}/apis/v2beta1/pipelines")[1]["code"] == 12
    assert kfp_api.violations == []


def test_the_mock_validates_its_own_responses(kfp_api: KfpApiMock) -> None:
    exp = kfp.Client(host=kfp_api.url, namespace="n").create_experiment("exp")
    kfp_api.experiments[exp.experiment_id]["storage_state"] = "GONE"
    status, answer = raw(f"{kfp_api.url}/apis/v2beta1/experiments/{exp.experiment_id}")
    assert status == 500 and "storage_state" in answer["message"]
    assert "mock sent invalid" in kfp_api.violations[0]


def test_stop_releases_the_port() -> None:
    import socket
    import threading

    before = threading.active_count()
    with KfpApiMock() as mock:
        raw(mock.url + "/apis/v2beta1/healthz")
        port = int(mock.url.rsplit(":", 1)[1])
    assert threading.active_count() == before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
