"""Paths are contents paths inside the server root: nothing outside it can be read or run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from api_client import Api, Write, notebook_node

GOOD = [("step:only", "x = 1")]


@pytest.fixture
def outside(tmp_path: Path, jp_root_dir: Path, write_notebook: Write) -> dict[str, str]:
    """A notebook outside the root, a symlink inside the root to it, a folder, a text file."""
    secret = tmp_path / "outside" / "secret.ipynb"
    secret.parent.mkdir()
    secret.write_text(nbformat.writes(notebook_node(*GOOD)))
    (jp_root_dir / "link.ipynb").symlink_to(secret)
    (jp_root_dir / "linked-folder").symlink_to(secret.parent, target_is_directory=True)
    (jp_root_dir / "folder.ipynb").mkdir()
    (jp_root_dir / "notes.txt").write_text("not a notebook")
    write_notebook("ok.ipynb", *GOOD)
    return {"absolute": str(secret), "relative": os.path.relpath(secret, jp_root_dir)}


NOT_FOUND = [
    "../x.ipynb",
    "sub/../../x.ipynb",
    "/etc/passwd",
    "ABSOLUTE",
    "link.ipynb",
    "linked-folder/secret.ipynb",
    "RELATIVE",
    "missing.ipynb",
    ".hidden.ipynb",
]
BAD = ["folder.ipynb", "notes.txt", ""]


def _path(name: str, outside: dict[str, str]) -> str:
    return {"ABSOLUTE": outside["absolute"], "RELATIVE": outside["relative"]}.get(name, name)


async def _all_ways(api: Api, path: str) -> list[tuple[str, int, str]]:
    """The status of each route that takes a notebook path."""
    got = []
    reply = await api.get("pipeline", query={"path": path})
    got.append(("GET pipeline", reply.status, reply.text))
    reply = await api.post("pipeline", body={"path": path, "notebook": notebook_node(*GOOD)})
    got.append(("POST pipeline", reply.status, reply.text))
    reply = await api.post("runs", body={"path": path})
    got.append(("POST runs", reply.status, reply.text))
    return got


@pytest.mark.parametrize("name", NOT_FOUND)
async def test_paths_outside_the_root_are_not_found(
    api: Api, outside: dict[str, str], jp_root_dir: Path, name: str
) -> None:
    (jp_root_dir / ".hidden.ipynb").write_text("{}")
    path = _path(name, outside)
    for route, status, text in await _all_ways(api, path):
        if name == "missing.ipynb" and route == "POST pipeline":
            assert status == 200, text  # a live model need not be saved yet
            continue
        assert status == 404, f"{route} {path!r}: {status} {text}"
        assert outside["absolute"] not in text or name == "ABSOLUTE"
    if name not in ("missing.ipynb", ".hidden.ipynb"):
        reply = await api.get("runs", query={"notebook": path})
        assert reply.status == 404, reply.text


@pytest.mark.parametrize("name", BAD)
async def test_folders_and_other_files_are_bad_requests(
    api: Api, outside: dict[str, str], name: str
) -> None:
    for route, status, text in await _all_ways(api, name):
        assert status == 400, f"{route} {name!r}: {status} {text}"


async def test_a_notebook_inside_the_root_is_found(api: Api, outside: dict[str, Any]) -> None:
    for route, status, text in await _all_ways(api, "ok.ipynb"):
        if route == "POST runs":
            continue  # running it is tested in test_runs.py
        assert status == 200, f"{route}: {text}"


async def test_a_symlink_inside_the_root_to_a_notebook_inside_it_is_followed(
    api: Api, jp_root_dir: Path, write_notebook: Write
) -> None:
    write_notebook("real/nb.ipynb", *GOOD)
    (jp_root_dir / "alias.ipynb").symlink_to(jp_root_dir / "real" / "nb.ipynb")
    reply = await api.get("pipeline", query={"path": "alias.ipynb"}, expect=200)
    assert reply.body["ok"] is True
