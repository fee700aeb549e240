"""``POST runs/{id}/steps/{step}/notebook`` copies an executed notebook into the server root only
for a run of a notebook inside that root, and never through a symlink leading out of it: the
runs are recorded straight in the server's store (no kernel runs), as a CLI run elsewhere or a
hostile folder would leave them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from api_client import Api, notebook_node

from kfnb.tracking import Store

ROUTE = "runs/{id}/steps/{step}/notebook"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """The server's run store (``KfnbServerSettings.home`` of these tests)."""
    return Store(tmp_path / "kfnb-home")


@pytest.fixture
def executed(tmp_path: Path) -> Path:
    """An executed step notebook, where runs keep them: outside the server root."""
    path = tmp_path / "artifacts" / "only.ipynb"
    path.parent.mkdir()
    nbformat.write(notebook_node(("step:only", "x = 1")), path)
    return path


def recorded(store: Store, notebook: Path | str | None, executed: Path) -> str:
    """A finished run of ``notebook`` whose step ``only`` left ``executed``."""
    run = store.create_run(
        kind="pipeline",
        name="pipe",
        backend="local",
        notebook=None if notebook is None else str(notebook),
        notebook_hash=None,
        params={},
        steps=["only"],
    )
    store.set_run_status(run.id, "RUNNING")
    store.set_step_status(run.id, "only", "RUNNING")
    store.set_step_status(run.id, "only", "SUCCEEDED", output_notebook=str(executed))
    store.set_run_status(run.id, "SUCCEEDED")
    return run.id


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


async def copy(api: Api, run_id: str) -> Any:
    return await api.post(ROUTE, path={"id": run_id, "step": "only"})


async def test_a_run_of_a_notebook_inside_the_root_is_copied(
    api: Api, store: Store, executed: Path, jp_root_dir: Path
) -> None:
    run_id = recorded(store, jp_root_dir / "pipe.ipynb", executed)
    reply = await copy(api, run_id)
    assert reply.status == 201, reply.text
    assert reply.body == {"path": f"kfnb-runs/{run_id}/only.ipynb"}
    assert (jp_root_dir / reply.body["path"]).read_bytes() == executed.read_bytes()


@pytest.mark.parametrize("where", ["outside", "symlink", "none"])
async def test_a_run_of_a_notebook_outside_the_root_is_refused(
    api: Api, store: Store, executed: Path, jp_root_dir: Path, tmp_path: Path, where: str
) -> None:
    outside = tmp_path / "elsewhere" / "pipe.ipynb"
    outside.parent.mkdir()
    nbformat.write(notebook_node(("step:only", "x = 1")), outside)
    (jp_root_dir / "link.ipynb").symlink_to(outside)  # inside the root, leading out
    notebook = {"outside": outside, "symlink": jp_root_dir / "link.ipynb", "none": None}[where]
    run_id = recorded(store, notebook, executed)
    reply = await copy(api, run_id)
    assert reply.status == 403, reply.text
    body = reply.body
    assert "outside this Jupyter server's root folder" in body["message"], body
    assert run_id in body["message"] and body["fix"] and body["where"] == f"run {run_id}"
    assert files_under(jp_root_dir) == ["link.ipynb"]  # nothing was copied in


@pytest.mark.parametrize("link", ["folder", "run-folder", "file"])
async def test_a_symlink_leading_out_of_the_root_is_refused(
    api: Api, store: Store, executed: Path, jp_root_dir: Path, tmp_path: Path, link: str
) -> None:
    run_id = recorded(store, jp_root_dir / "pipe.ipynb", executed)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = jp_root_dir / "kfnb-runs"
    if link == "folder":  # the executed-notebooks folder itself
        folder.symlink_to(elsewhere, target_is_directory=True)
        named = "kfnb-runs"
    elif link == "run-folder":  # the run's folder in it
        folder.mkdir()
        (folder / run_id).symlink_to(elsewhere, target_is_directory=True)
        named = f"kfnb-runs/{run_id}"
    else:  # the copy itself
        (folder / run_id).mkdir(parents=True)
        (elsewhere / "victim.ipynb").write_text("{}")
        (folder / run_id / "only.ipynb").symlink_to(elsewhere / "victim.ipynb")
        named = f"kfnb-runs/{run_id}/only.ipynb"
    reply = await copy(api, run_id)
    assert reply.status == 403, reply.text
    body = reply.body
    assert f"'{named}'" in body["message"] and "symlink" in body["message"], body
    assert "outside" in body["message"] and named in body["fix"], body
    assert body["where"] == named
    assert files_under(elsewhere) == ([] if link != "file" else ["victim.ipynb"])
    if link == "file":
        assert (elsewhere / "victim.ipynb").read_text() == "{}"


async def test_a_symlink_inside_the_root_to_a_folder_inside_it_is_followed(
    api: Api, store: Store, executed: Path, jp_root_dir: Path
) -> None:
    (jp_root_dir / "real-runs").mkdir()
    (jp_root_dir / "kfnb-runs").symlink_to(jp_root_dir / "real-runs", target_is_directory=True)
    run_id = recorded(store, jp_root_dir / "pipe.ipynb", executed)
    reply = await copy(api, run_id)
    assert reply.status == 201, reply.text
    assert os.path.isfile(jp_root_dir / "real-runs" / run_id / "only.ipynb")


@pytest.mark.parametrize("folder", ["../escape", "/tmp/kfnb-escape", "a/../../escape"])
async def test_an_executed_dir_leading_out_of_the_root_is_refused(
    api: Api, store: Store, executed: Path, jp_root_dir: Path, jp_serverapp: Any, folder: str
) -> None:
    jp_serverapp.web_app.settings["kfnb"].executed_dir = folder
    run_id = recorded(store, jp_root_dir / "pipe.ipynb", executed)
    reply = await copy(api, run_id)
    assert reply.status == 403, reply.text
    assert reply.body["where"] == "KfnbServerSettings.executed_dir" and reply.body["fix"]
    assert not (jp_root_dir.parent / "escape").exists()
    assert not Path("/tmp/kfnb-escape").exists()
