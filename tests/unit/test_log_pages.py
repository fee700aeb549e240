"""Step logs are read in pages by byte offset (``read_log_file``, ``RunView.read_log``): the one
implementation behind ``kfnb logs``, the widgets and REST. No page splits a UTF-8 character."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfnb.backends import RunView, read_log_file
from kfnb.tracking import Store

TEXT = "é€😀 done\n"  # 2-, 3- and 4-byte characters


def pages(path: Path, limit: int, ended: bool = True) -> list[str]:
    offset, found = 0, []
    for _ in range(100):
        page = read_log_file(str(path), offset, limit, ended)
        assert page.offset >= offset
        found.append(page.text)
        if page.done or (not ended and page.offset == offset):
            break
        offset = page.offset
    return found


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 6, 7, 9, 64])
def test_pages_join_back_whole_characters(tmp_path: Path, limit: int) -> None:
    log = tmp_path / "step.log"
    log.write_text(TEXT)
    found = pages(log, limit)
    assert "".join(found) == TEXT
    assert all("\ufffd" not in p for p in found)  # no page ended inside a character


def test_a_running_step_keeps_a_cut_character_for_the_next_page(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    log.write_bytes("ab€".encode()[:4])  # the writer is in the middle of '€'
    first = read_log_file(str(log), 0, None, ended=False)
    assert (first.text, first.offset, first.done) == ("ab", 2, False)
    with log.open("ab") as f:
        f.write("€".encode()[2:] + b"\n")
    rest = read_log_file(str(log), first.offset, None, ended=True)
    assert (rest.text, rest.done) == ("€\n", True)


def test_run_view_reads_a_steps_log_through_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path)
    run = store.create_run(
        kind="pipeline",
        name="p",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={},
        steps=["a"],
    )
    log = tmp_path / "a.log"
    log.write_text(TEXT)
    store.set_run_status(run.id, "RUNNING")
    store.set_step_status(run.id, "a", "RUNNING", log=str(log))
    view = RunView(store, run.id)
    page = view.read_log("a", 0, 3)
    assert (page.text, page.offset, page.done) == ("é", 2, False)
    assert view.logs("a") == TEXT
    store.set_step_status(run.id, "a", "SUCCEEDED")
    assert view.read_log("a", page.offset, None).to_dict() == {
        "text": TEXT[1:],
        "offset": len(TEXT.encode()),
        "done": True,
    }
