"""NaN and infinities never reach the runs API: refused as parameters, and a record that holds one
(written by an older kfnb) still answers standard JSON, which browsers and the panel parse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from api_client import Api, Write

from kfnb.tracking import Store

PIPE = (("pipeline-parameters", "scale = 1.5"), ("step:make", "x = scale * 2"))


def strict(text: str) -> Any:
    """JSON as a browser reads it: NaN, Infinity and -Infinity are errors."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not standard JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    "body",
    [
        {"params": {"scale": float("nan")}},
        {"params": {"scale": float("inf")}},
        {"param_strings": {"scale": "nan"}},
        {"param_strings": {"scale": "-Infinity"}},
        {"param_strings": {"scale": "1e999"}},
    ],
    ids=["nan", "inf", "text-nan", "text-minus-inf", "overflow"],
)
async def test_a_non_finite_parameter_is_a_400_naming_it(
    api: Api, write_notebook: Write, body: dict[str, Any]
) -> None:
    path = write_notebook("p.ipynb", *PIPE)
    raw = json.dumps({"path": path, **body}).encode()  # Python writes NaN as a client might
    reply = await api.post("runs", raw=raw, expect=400)
    assert "'scale'" in reply.body["message"] and reply.body["fix"]
    listed = await api.get("runs", expect=200)
    assert strict(listed.text)["runs"] == []  # nothing started


async def test_an_old_record_with_nan_still_answers_standard_json(
    api: Api, write_notebook: Write, tmp_path: Path
) -> None:
    path = write_notebook("p.ipynb", *PIPE)
    run = (await api.post("runs", body={"path": path}, expect=201)).body
    await api.wait_run(run["id"])
    store = Store(tmp_path / "kfnb-home")
    store.log_metric(run["id"], "loss", float("nan"))
    store.log_metric(run["id"], "gain", float("inf"))
    with store._db.write() as conn:  # as an older kfnb could write it: a bare NaN in JSON
        conn.execute(
            "UPDATE params SET value = 'NaN' WHERE run_id = ? AND name = 'scale'", (run["id"],)
        )
    for reply in (
        await api.get("runs", expect=200),
        await api.get("runs/{id}", path={"id": run["id"]}, expect=200),
        await api.get("runs/{id}/metrics", path={"id": run["id"]}, expect=200),
    ):
        strict(reply.text)
    one = strict((await api.get("runs/{id}", path={"id": run["id"]}, expect=200)).text)
    assert one["params"]["scale"] is None
    assert one["metrics"]["loss"] is None and one["metrics"]["gain"] is None
