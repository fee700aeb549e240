"""``GET backends``: where this server can run pipelines, and why not where it cannot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from api_client import Api, Write

from kfnb.backends import get_backend


async def test_local_is_there_and_kfp_says_what_it_misses(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFNB_GPUS", "")
    found = (await api.get("backends", expect=200)).body
    by_name = {b["name"]: b for b in found}
    assert {"local", "kfp"} <= set(by_name)
    cpus = os.cpu_count()
    local = by_name["local"]
    assert {k: local[k] for k in ("name", "available", "detail")} == {
        "name": "local",
        "available": True,
        "detail": f"this machine: {cpus} CPU{'s' * (cpus != 1)}, 0 GPUs",
    }
    assert by_name["kfp"]["available"] is False
    assert "no Kubeflow Pipelines host given" in by_name["kfp"]["detail"]


async def test_gpus_and_a_kfp_host_from_the_environment(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFNB_GPUS", "0,1")
    monkeypatch.setenv("KFNB_KFP_HOST", "http://127.0.0.1:9/pipeline")
    by_name = {b["name"]: b for b in (await api.get("backends", expect=200)).body}
    assert by_name["local"]["detail"].endswith("2 GPUs (0, 1)")
    assert by_name["kfp"]["available"] is True
    assert by_name["kfp"]["detail"] == "Kubeflow Pipelines at http://127.0.0.1:9/pipeline"


async def test_a_kfp_host_from_the_config_file(api: Api, tmp_path: Path) -> None:
    (tmp_path / "kfnb-config.yaml").write_text(
        "kfp:\n  host: https://kubeflow.example.org/pipeline\n  namespace: team-a\n"
    )
    by_name = {b["name"]: b for b in (await api.get("backends", expect=200)).body}
    assert by_name["kfp"]["detail"] == (
        "Kubeflow Pipelines at https://kubeflow.example.org/pipeline (namespace team-a)"
    )


async def test_a_host_without_a_scheme_is_not_available(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFNB_KFP_HOST", "kubeflow.example.org")
    by_name = {b["name"]: b for b in (await api.get("backends", expect=200)).body}
    assert by_name["kfp"]["available"] is False and "no scheme" in by_name["kfp"]["detail"]


async def test_a_kfp_run_whose_cluster_cannot_be_reached_says_so(
    api: Api, write_notebook: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFNB_KFP_HOST", "http://127.0.0.1:9")  # discard port: refused
    path = write_notebook("one.ipynb", ("step:only", "x = 1"))
    reply = await api.post("runs", body={"path": path, "backend": "kfp"}, expect=500)
    assert "127.0.0.1:9" in reply.body["message"]


async def test_each_backend_lists_the_options_its_backend_declares(api: Api) -> None:
    """The form's options come from the backend (``Backend.options``), hidden ones left out."""
    found = (await api.get("backends", expect=200)).body
    for entry in found:
        declared = [o.to_dict() for o in get_backend(entry["name"]).options() if not o.hidden]
        assert entry["options"] == declared, entry["name"]
    local = {o["name"]: o for o in next(b for b in found if b["name"] == "local")["options"]}
    assert local["max_parallel"]["type"] == "int" and local["max_parallel"]["nullable"] is True
    assert local["max_parallel"]["env"] == ["KFNB_MAX_PARALLEL"]
    assert local["cache"] == {**local["cache"], "type": "bool", "default": True}
    assert local["preload"]["type"] == "list" and local["preload"]["default"] == []
    assert "kernel_transport" not in local  # hidden: not offered in forms
