"""What the ``%kfnb`` magic knows about its kernel: which notebook it belongs to, and whether
what it executed is what that notebook holds on disk (kfnb runs the saved file)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..notebook.magic import is_control_line

_TIMES = "_kfnb_executed_at"  # attribute on the shell: execution count -> time.time()


def display_path(path: Path, cwd: str | Path | None = None) -> str:
    try:
        return str(path.resolve().relative_to(Path(cwd or os.getcwd()).resolve()))
    except ValueError:
        return str(path)


# -- what ran in this kernel ---------------------------------------------------------------
def normalize(source: str) -> str:
    """A cell's code as compared: notebook-control lines dropped, trailing blanks ignored."""
    lines = [ln.rstrip() for ln in source.strip().split("\n") if not is_control_line(ln)]
    return "\n".join(lines).strip()


def _only_line_magics(code: str) -> bool:
    lines = [ln.strip() for ln in code.split("\n") if ln.strip()]
    return all(ln.startswith("%") and not ln.startswith("%%") for ln in lines)


def track_executions(shell: Any) -> None:
    """Remember when each cell of the session ran (IPython's history keeps no times)."""
    if getattr(shell, _TIMES, None) is not None:
        return
    times: dict[int, float] = {}
    setattr(shell, _TIMES, times)

    def before(info: Any) -> None:
        if getattr(info, "store_history", True):
            times[shell.execution_count] = time.time()

    shell.events.register("pre_run_cell", before)
    shell._kfnb_loaded_at = time.time()


def executed_cells(shell: Any) -> list[tuple[float | None, str]]:
    """(when it ran, if known; raw source) of every cell this session executed, in order."""
    raw: Sequence[str] = getattr(
        getattr(shell, "history_manager", None), "input_hist_raw", None
    ) or shell.user_ns.get("In", [])
    times: dict[int, float] = getattr(shell, _TIMES, None) or {}
    loaded = getattr(shell, "_kfnb_loaded_at", None)
    # a cell without a time ran before `%load_ext kfnb`: no later than the extension's loading
    return [(times.get(i, loaded), src) for i, src in enumerate(raw) if i > 0 and src]


def saved_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [
        "".join(c["source"]) if isinstance(c.get("source"), list) else str(c.get("source"))
        for c in nb.get("cells", [])
        if c.get("cell_type") == "code"
    ]


def unsaved(
    saved: Iterable[str], executed: Iterable[tuple[float | None, str]], saved_at: float
) -> list[str]:
    """Executed code the saved notebook lacks, newest version first, once each. Code run
    before the file was last saved is left out: it was edited or deleted since, and saved."""
    on_disk = {normalize(s) for s in saved}
    found: list[str] = []
    for when, source in reversed(list(executed)):
        code = normalize(source)
        if not code or _only_line_magics(code) or code in on_disk or code in found:
            continue
        if when is not None and when <= saved_at:
            continue
        found.append(code)
    return found[::-1]


def unsaved_warning(shell: Any, path: Path) -> str | None:
    """The warning to print when this kernel ran code the saved ``path`` does not hold."""
    try:
        differ = unsaved(saved_cells(path), executed_cells(shell), path.stat().st_mtime)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not a readable notebook: running it reports that properly
    if not differ:
        return None
    n = len(differ)
    examples = ", ".join(repr(_first_line(c)) for c in differ[:3])
    return (
        f"kfnb: warning: the saved notebook differs from what you ran in this kernel: "
        f"{n} cell{'s' if n > 1 else ''} (e.g. {examples}) {'are' if n > 1 else 'is'} not "
        f"in {display_path(path)} on disk. kfnb runs the saved file: save (Ctrl+S) to "
        "include your changes"
    )


def _first_line(code: str) -> str:
    first = code.split("\n", 1)[0]
    if first.startswith("%%step") and "\n" in code:  # the header says little: show the code
        first = code.split("\n")[1].strip() or first
    return first if len(first) <= 60 else first[:57] + "..."
