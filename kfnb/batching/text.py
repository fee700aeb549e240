"""A sweep as text: ``batch_table`` (``kfnb show BATCH``, the end of ``kfnb batch``, a batch's
``repr`` outside a notebook), ``set_line`` (a line per finished set while ``kfnb batch`` follows
a sweep off a terminal), ``progress_bar`` (on a terminal) and ``markdown`` (``--output x.md``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..format import mark
from .view import metric_names, param_names

CELL = 40  # characters of a value shown in a line or table cell (values may be 64 KiB)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= CELL else f"{text[: CELL - 3]}..."


def _params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_cell(v)}" for k, v in params.items())


def set_line(row: Mapping[str, Any]) -> str:
    """One finished set, as ``kfnb batch`` prints it off a terminal."""
    shown = " ".join(f"{k}={_cell(v)}" for k, v in row["metrics"].items())
    if row["status"] == "FAILED":
        shown = f"failed: {row.get('error') or ''}"
    duration = "" if row.get("duration") is None else f" ({row['duration']:.1f}s)"
    return f"{mark(row['status'])} set {row['set']}: {_params(row['params'])}  {shown}".rstrip() + (
        duration
    )


def progress_bar(view: Mapping[str, Any], width: int = 30) -> str:
    counts = view.get("counts") or {}
    total = sum(counts.values()) or 1
    done = counts.get("SUCCEEDED", 0) + counts.get("FAILED", 0) + counts.get("CANCELED", 0)
    filled = int(width * done / total)
    failed = f", {counts['FAILED']} failed" if counts.get("FAILED") else ""
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} sets, "
        f"{counts.get('RUNNING', 0)} running{failed}"
    )


def table_rows(view: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the results table."""
    names = param_names(dict(view))
    metrics = metric_names(dict(view))
    header = ["set", "status", *names, *metrics, "run"]
    rows = [
        [
            str(r["set"]),
            r["status"].lower(),
            *(_cell(r["params"].get(n)) for n in names),
            *(_cell(r["metrics"].get(m)) for m in metrics),
            str(r.get("run") or "-"),
        ]
        for r in view.get("sets") or []
    ]
    return header, rows


def batch_table(view: Mapping[str, Any]) -> list[str]:
    """A sweep: its outcome, counts and the results table."""
    counts = view.get("counts") or {}
    shown = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
    settings = view.get("batch") or {}
    lines = [
        f"Batch {view['name']} ({view['id']}): {view['status']}, {shown or 'no sets'}",
        f"  {len(view.get('sets') or [])} sets, {settings.get('max_parallel')} at a time",
    ]
    if view.get("error"):
        lines.append(f"  error: {view['error']}")
    header, rows = table_rows(view)
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines.append("")
    lines += [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    ]
    return lines


def markdown(view: Mapping[str, Any]) -> str:
    """The results table in Markdown."""
    header, rows = table_rows(view)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
