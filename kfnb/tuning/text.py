"""A study as text: ``study_table`` (``kfnb show STUDY``, the end of ``kfnb tune``, a study's
``repr`` outside a notebook) and ``trial_line`` (a line per ended trial while ``kfnb tune``
follows a study), from ``view.study_view``. Marks come from ``kfnb.format``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..format import mark


def _value(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}"


def _params(params: Mapping[str, Any]) -> str:
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def trial_line(row: Mapping[str, Any], objective: Any, best: Mapping[str, Any] | None) -> str:
    """One ended trial, as ``kfnb tune`` prints it while the study runs."""
    duration = "" if row.get("duration") is None else f" ({row['duration']:.1f}s)"
    shown = f"{objective}={_value(row.get('value'))}" if row["status"] == "SUCCEEDED" else ""
    if row["status"] == "PRUNED" and row.get("intermediate"):
        step, value = row["intermediate"][-1]
        shown = f"pruned at step {step} ({objective}={_value(value)})"
    if row["status"] == "FAILED":
        shown = f"failed: {row.get('error') or ''}"
    lead = f"{mark(row['status'])} trial {row.get('number')}: {shown} {_params(row['params'])}"
    tail = f"   best {_value(best['value'])} (trial {best['number']})" if best else ""
    return (lead.rstrip() + duration + tail).rstrip()


def study_table(view: Mapping[str, Any]) -> list[str]:
    """A study: settings, counts, best trial and the trials table (``kfnb show STUDY``)."""
    study = view.get("study") or {}
    counts = view.get("counts") or {}
    shown = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
    lines = [
        f"Study {view['name']} ({view['id']}): {view['status']}, {shown or 'no trials yet'} "
        f"of {study.get('trials')} trials",
        f"  {study.get('direction')} {study.get('objective')} with {study.get('algorithm')}, "
        f"{study.get('parallel')} at a time" + (", median pruning" if study.get("prune") else ""),
    ]
    if view.get("error"):
        lines.append(f"  error: {view['error']}")
    best = view.get("best")
    if best:
        lines.append(
            f"  best: {study.get('objective')}={_value(best['value'])} (trial {best['number']}, "
            f"run {best['id']}): {_params(best['params'])}"
        )
    rows = view.get("trials") or []
    if not rows:
        return lines
    names = list((study.get("space") or {}).keys()) or list(rows[0]["params"])
    header = ["#", "state", str(study.get("objective")), *names, "time"]
    table = [header]
    for row in rows:
        params = row["params"]
        table.append(
            [
                str(row.get("number")),
                f"{mark(row['status'])} {row['status'].lower()}",
                _value(row.get("value")),
                *(
                    f"{params[n]:.4g}" if isinstance(params.get(n), float) else str(params.get(n))
                    for n in names
                ),
                "" if row.get("duration") is None else f"{row['duration']:.1f}s",
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines.append("")
    lines += [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    ]
    return lines
