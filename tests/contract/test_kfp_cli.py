"""``kfnb run/show/runs/cancel`` with ``--backend kfp``, in-process, against the KFP API mock."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kfp_mock import KfpApiMock

from kfnb.cli import main
from kfnb.tracking import Run, Store

pytestmark = pytest.mark.filterwarnings("ignore:This client only works:FutureWarning")

Output = tuple[int, str, str]
Cli = Callable[..., Output]


@pytest.fixture(autouse=True)
def fast_polling() -> None:
    """Poll KFP every 10 ms instead of 5 s, through the config file as a user would."""
    Path(os.environ["KFNB_CONFIG"]).write_text("kfp:\n  poll_interval: 0.01\n")


@pytest.fixture
def kfnb_cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``kfnb_cli("run", ...)`` -> (exit code, stdout, stderr) of ``kfnb`` run in-process."""

    def call(*argv: str) -> Output:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def remote_of(record: Run) -> dict[str, Any]:
    assert record.remote is not None, f"run {record.id} is not a remote run"
    return record.remote


def only_run(home: Path) -> str:
    [record] = Store(home).list_runs()
    return record.id


def test_run_show_and_runs(
    kfp_api: KfpApiMock, fanout_notebook: Path, kfnb_env: Path, kfnb_cli: Cli
) -> None:
    code, out, err = kfnb_cli(
        "run",
        fanout_notebook,
        "--backend",
        "kfp",
        "--host",
        kfp_api.url,
        "--namespace",
        "alice",
        "-p",
        "n",
        "4",
    )
    assert code == 0, err
    run_id = only_run(kfnb_env)
    record = Store(kfnb_env).get_run(run_id)
    assert record.status == "SUCCEEDED"
    url = remote_of(record)["url"]
    assert remote_of(record)["id"] in url
    assert f"submitted run {run_id} to {kfp_api.url}: {url}" in out
    assert "fanout: succeeded in" in out and f"(run {run_id})" in out
    assert "total succeeded" in out  # one line per state change when not on a terminal
    [body] = [r.body for r in kfp_api.requests if r.method == "POST" and r.path.endswith("/runs")]
    assert body["runtime_config"]["parameters"] == {"n": 4, "name": "x"}

    code, out, err = kfnb_cli("show", run_id[:10])
    assert code == 0, err
    assert f"run {run_id}  SUCCEEDED" in out
    assert url in out
    assert "params: n=4, name='x'" in out

    gets = len(kfp_api.requests)
    code, out, err = kfnb_cli("runs")
    assert code == 0, err
    [row] = [line for line in out.splitlines() if line.startswith(run_id)]
    assert row.split()[1:3] == ["fanout", "SUCCEEDED"] and row.split()[-1] == "kfp"
    assert len(kfp_api.requests) == gets  # an ended run is not asked about again
    assert kfp_api.violations == []


def test_detach_then_show_then_cancel(
    kfp_api: KfpApiMock, fanout_notebook: Path, kfnb_env: Path, kfnb_cli: Cli
) -> None:
    kfp_api.hold = True
    code, out, err = kfnb_cli(
        "run", fanout_notebook, "--backend", "kfp", "--host", kfp_api.url, "--detach"
    )
    assert code == 0, err
    run_id = only_run(kfnb_env)
    assert f"follow it with: kfnb show {run_id}" in out
    record = Store(kfnb_env).get_run(run_id)
    assert record.status == "PENDING"
    kfp_id = remote_of(record)["id"]
    assert kfp_api.runs[kfp_id]["state"] == "PENDING"  # nobody polled it yet

    code, out, err = kfnb_cli("show", run_id)
    assert code == 0, err
    assert f"run {run_id}  RUNNING" in out
    assert Store(kfnb_env).get_run(run_id).step("make").status == "RUNNING"

    code, out, err = kfnb_cli("runs")
    assert code == 0, err
    assert any(line.startswith(run_id) and " RUNNING " in line for line in out.splitlines())

    code, out, err = kfnb_cli("cancel", run_id)
    assert code == 0, err
    assert f"run {run_id}: CANCELED" in out
    assert Store(kfnb_env).get_run(run_id).status == "CANCELED"
    assert kfp_api.runs[kfp_id]["state"] == "CANCELED"
    assert [
        r.method for r in kfp_api.requests if r.path == f"/apis/v2beta1/runs/{kfp_id}:terminate"
    ] == ["POST"]

    code, out, err = kfnb_cli("cancel", run_id)
    assert code == 0 and "already ended: CANCELED" in out
    assert kfp_api.violations == []


def test_detach_json_prints_only_the_record(
    kfp_api: KfpApiMock, fanout_notebook: Path, kfnb_cli: Cli
) -> None:
    code, out, err = kfnb_cli(
        "run", fanout_notebook, "--backend", "kfp", "--host", kfp_api.url, "--detach", "--json"
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["backend"] == "kfp" and record["remote"]["id"] in kfp_api.runs
    assert "submitted run" in err


def test_show_without_the_server_shows_the_last_known_state(
    kfp_api: KfpApiMock, fanout_notebook: Path, kfnb_env: Path, kfnb_cli: Cli
) -> None:
    code, _, err = kfnb_cli(
        "run", fanout_notebook, "--backend", "kfp", "--host", kfp_api.url, "--detach"
    )
    assert code == 0, err
    run_id = only_run(kfnb_env)
    kfp_api.stop()
    code, out, err = kfnb_cli("show", run_id)
    assert code == 0
    assert f"run {run_id}  PENDING" in out
    assert f"kfnb: warning: run {run_id} shows its last known state" in err
    assert kfp_api.url in err and "cannot connect" in err


def test_kfp_flags_need_the_kfp_backend(
    kfp_api: KfpApiMock, fanout_notebook: Path, kfnb_env: Path, kfnb_cli: Cli
) -> None:
    code, _, err = kfnb_cli("run", fanout_notebook, "--host", kfp_api.url)
    assert code == 2
    assert err.startswith("kfnb: error: backend 'local' has no option 'host'. Fix: ")
    assert "its options are: cache, cpus" in err
    assert kfp_api.requests == []
    assert Store(kfnb_env).list_runs() == []


def test_unauthorized_is_one_error_line(
    kfp_api: KfpApiMock, fanout_notebook: Path, kfnb_env: Path, kfnb_cli: Cli
) -> None:
    kfp_api.require_token = "s3cret"
    code, out, err = kfnb_cli(
        "run", fanout_notebook, "--backend", "kfp", "--host", kfp_api.url, "--namespace", "alice"
    )
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("kfnb: error: ")
    assert kfp_api.url in line and "HTTP 401" in line and "KFNB_KFP_TOKEN" in line
    assert "Traceback" not in err
    assert Store(kfnb_env).list_runs() == []
