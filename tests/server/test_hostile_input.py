"""Hostile input never becomes a 500 with a traceback: over-long paths and path parts, text that
is no file name, symlink loops, parameter expressions too deep to parse. Each is a 4xx naming the
problem and the fix; an unexpected error while parsing is a 500 that shows no internals."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from api_client import Api, Write, notebook_node

from kfnb.server_ext.base import INTERNAL, error_status
from kfnb.server_ext.errors import BadRequest, Forbidden, NotFound
from kfnb.server_ext.paths import ContentsPaths

GOOD = [("step:only", "x = 1")]
LONG_NAME = "n" * 5994 + ".ipynb"  # one 6,000-character part: ENAMETOOLONG from the OS
LONG_PATH = "d/" * 2997 + "x.ipynb"  # 6,000 characters of short parts: over PATH_MAX


async def _every_route(api: Api, path: str) -> list[tuple[str, int, str]]:
    """The status of each route that takes a notebook path, and its body (a path that is no
    UTF-8 text goes in JSON bodies only: a URL cannot carry it)."""
    nb = notebook_node(*GOOD)
    step = {"name": "only", "after": [], "gpus": 0, "image": None}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "pipeline", {"query": {"path": path}}),
        ("POST", "pipeline", {"body": {"path": path, "notebook": nb}}),
        ("POST", "runs", {"body": {"path": path}}),
        ("GET", "runs", {"query": {"notebook": path}}),
        ("POST", "studies", {"body": {"notebook": path}}),
        ("POST", "cells/step", {"body": {"path": path, "notebook": nb, "index": 0, "step": step}}),
    ]
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        calls = [call for call in calls if call[0] == "POST"]
    got = []
    for method, route, kw in calls:
        reply = await api.call(method, route, **kw)
        got.append((f"{method} {route}", reply.status, reply.text))
    return got


def _no_internals(text: str) -> dict[str, Any]:
    assert "Traceback" not in text and 'File "' not in text, text
    body: dict[str, Any] = json.loads(text)
    assert set(body) >= {"code", "message", "fix", "where"}, body
    return body


@pytest.mark.parametrize(
    ("path", "words"),
    [
        pytest.param(LONG_NAME, ["too long", "255"], id="long-part"),
        pytest.param(LONG_PATH, ["too long", "4096"], id="long-path"),
        pytest.param("sub/\ud800.ipynb", ["not valid text"], id="lone-surrogate"),
    ],
)
async def test_a_path_the_os_cannot_take_is_a_400_naming_the_problem(
    api: Api, write_notebook: Write, path: str, words: list[str]
) -> None:
    write_notebook("sub/ok.ipynb", *GOOD)
    for route, status, text in await _every_route(api, path):
        assert status == 400, f"{route}: {status} {text[:300]}"
        body = _no_internals(text)
        assert all(w in body["message"] for w in words), f"{route}: {body}"
        assert body["fix"], f"{route}: {body}"
        assert len(body["message"]) < 400, f"{route}: the message repeats the whole path"


async def test_symlink_loops_are_not_found(api: Api, jp_root_dir: Path) -> None:
    (jp_root_dir / "loop.ipynb").symlink_to(jp_root_dir / "loop.ipynb")
    (jp_root_dir / "spin").symlink_to(jp_root_dir / "spin", target_is_directory=True)
    for path in ("loop.ipynb", "spin/x.ipynb"):
        for route, status, text in await _every_route(api, path):
            if route == "POST pipeline" or route == "POST cells/step":
                assert status in (200, 400, 404), f"{route} {path}: {status} {text[:300]}"
            else:
                assert status in (400, 404), f"{route} {path}: {status} {text[:300]}"
            if status >= 400:
                _no_internals(text)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
async def test_an_unreadable_folder_is_a_4xx(api: Api, jp_root_dir: Path) -> None:
    locked = jp_root_dir / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        for route, status, text in await _every_route(api, "locked/x.ipynb"):
            assert 400 <= status < 500, f"{route}: {status} {text[:300]}"
            _no_internals(text)
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize(
    ("code", "kind", "status"),
    [
        (errno.EACCES, Forbidden, 403),
        (errno.EPERM, Forbidden, 403),
        (errno.ENAMETOOLONG, BadRequest, 400),
        (errno.ELOOP, NotFound, 404),
        (errno.EIO, OSError, None),  # none of the path's doing: a 500, as before
    ],
)
def test_os_errors_on_a_contents_path_are_the_users_where_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, kind: type, status: int | None
) -> None:
    """The mapping the tests above cannot reach as root (who reads every folder)."""

    class Failing(type(tmp_path)):  # PosixPath here: is_dir fails as the OS would make it
        def is_dir(self, *args: Any, **kwargs: Any) -> bool:
            raise OSError(code, os.strerror(code), str(self))

    failing = Failing(tmp_path / "sub" / "x.ipynb")
    monkeypatch.setattr(ContentsPaths, "resolve", lambda self, path: failing)
    with pytest.raises(kind) as caught:
        ContentsPaths(str(tmp_path)).notebook("sub/x.ipynb")
    assert error_status(caught.value) == status
    if status is not None:
        assert "'sub/x.ipynb'" in str(caught.value)


# -- parameters too deep to parse ---------------------------------------------------------------
DEEP = "+".join(["1"] * 20000)


async def test_a_parameter_text_of_20000_terms_is_a_400(api: Api, write_notebook: Write) -> None:
    path = write_notebook("p.ipynb", ("pipeline-parameters", "x = 1"), ("step:a", "y = x"))
    reply = await api.post("runs", body={"path": path, "param_strings": {"x": DEEP}})
    assert reply.status == 400, reply.text[:500]
    body = _no_internals(reply.text)
    assert "'x'" in body["message"] and body["fix"]
    assert (await api.get("runs", expect=200)).body["total"] == 0  # nothing started


async def test_a_parameters_cell_of_20000_terms_is_a_400(api: Api, write_notebook: Write) -> None:
    path = write_notebook("p.ipynb", ("pipeline-parameters", f"x = {DEEP}"), ("step:a", "y = x"))
    reply = await api.post("runs", body={"path": path})
    assert reply.status == 400, reply.text[:500]
    _no_internals(reply.text)
    view = await api.get("pipeline", query={"path": path})
    assert view.status == 200, view.text[:500]
    assert view.body["ok"] is False and view.body["problems"][0]["cell_index"] == 0


@pytest.mark.parametrize("error", [RecursionError("deep"), MemoryError(), ValueError("inner")])
async def test_an_unexpected_error_while_parsing_shows_no_internals(
    api: Api, write_notebook: Write, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    """Whatever the parser raises, the user gets the table's 500 body, never a traceback."""
    import kfnb.api
    import kfnb.server_ext.pipelines as pipelines

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(pipelines, "parse_notebook", broken)
    monkeypatch.setattr(kfnb.api, "resolve_params", broken)  # the parameters of POST runs
    path = write_notebook("p.ipynb", *GOOD)
    reply = await api.post("runs", body={"path": path, "param_strings": {"x": "1"}})
    assert reply.status == 500, reply.text
    assert _no_internals(reply.text) == {
        "code": 500,
        "message": INTERNAL,
        "fix": None,
        "where": None,
    }
    live = json.dumps({"path": path, "notebook": notebook_node(*GOOD)}).encode()
    for method, body in (("GET", None), ("POST", live)):
        # the contract documents no 500 here: fetched without its check
        response = await api.client.fetch(
            api.url("pipeline", query={"path": path} if body is None else None),
            method=method,
            body=body,
            headers=api.auth,
            raise_error=False,
        )
        text = response.body.decode()
        assert response.code == 500, text
        found = _no_internals(text)
        assert found == {"code": 500, "message": INTERNAL, "fix": None, "where": None}


# -- bodies -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "words"),
    [
        pytest.param(b'{"path": "\xff\xfe.ipynb"}', ["not UTF-8"], id="not-utf8"),
        pytest.param(b"\xff\xfe\x00{", ["not UTF-8"], id="utf16"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, ["nested too deeply"], id="deep"),
        pytest.param(b'{"path": ', ["not valid JSON"], id="cut"),
        pytest.param(b"\xef\xbb\xbf{}", ["not valid JSON"], id="bom"),
    ],
)
async def test_a_body_that_is_no_json_is_a_400(api: Api, raw: bytes, words: list[str]) -> None:
    for route in ("pipeline", "runs", "cells/step", "studies"):
        reply = await api.post(route, raw=raw)
        assert reply.status == 400, f"{route}: {reply.status} {reply.text[:300]}"
        body = _no_internals(reply.text)
        assert all(w in body["message"] for w in words) and body["fix"], body


async def test_text_utf8_cannot_carry_is_escaped_when_quoted_back(api: Api) -> None:
    """A lone surrogate sent as a JSON escape, quoted back in a message: an escape again."""
    reply = await api.post("runs", raw=b'{"\\ud800x": 1, "path": "p.ipynb"}', expect=400)
    assert "\\ud800x" in reply.text and reply.body["message"].startswith("unknown field(s)")
    assert reply.body["message"].encode("utf-8", "surrogatepass").count(b"\xed\xa0\x80") == 1


# -- backend options that are no text a file or a process can take --------------------------------
# (Option.check refuses them: before, LocalBackend.submit raised ValueError/UnicodeEncodeError, a
# 500, after it had recorded the run, which stayed PENDING)
@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"workdir": "\x00"}, id="workdir-nul"),
        pytest.param({"workdir": "\ud800"}, id="workdir-surrogate"),
        pytest.param({"preload": ["\x00"], "pool_size": 1}, id="preload-nul"),
        pytest.param({"kernel_transport": "udp"}, id="transport-unknown"),
        pytest.param({"workdir": "w" * 5000}, id="workdir-5000-chars"),
    ],
)
async def test_a_backend_option_that_is_no_text_is_a_400(
    api: Api, write_notebook: Write, options: dict[str, Any]
) -> None:
    path = write_notebook("p.ipynb", *GOOD)
    reply = await api.post("runs", body={"path": path, "options": options})
    assert reply.status == 400, reply.text[:300]
    body = _no_internals(reply.text)
    assert repr(next(iter(options))) in body["message"] and body["fix"]
    assert (await api.get("runs", expect=200)).body["total"] == 0  # nothing recorded


@pytest.mark.parametrize("last", [str(2**63), "9" * 400, "9" * 5000, "-1", "x"])
async def test_a_last_event_id_out_of_range_is_a_400(api: Api, last: str) -> None:
    """SQLite holds 64-bit integers: a bigger id was a 500 (OverflowError) before."""
    reply = await api.get(
        "events", query={"wait": "0"}, headers={"Last-Event-ID": last}, expect=400
    )
    body = _no_internals(reply.text)
    assert "Last-Event-ID" in body["message"] and body["fix"] and len(body["message"]) < 120
