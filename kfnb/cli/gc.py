"""Text ``kfnb gc`` prints: the runs that go (or would go, ``--dry-run``), the runs the policy
selected that stay and why, and the disk space freed."""

from __future__ import annotations

from ..format import timestamp
from ..retention import Report, human_bytes


def report_lines(report: Report) -> list[str]:
    """A table of the top-level runs removed (with how many runs each tree holds), the held
    ones, and a summary line."""
    verb = "would remove" if report.dry_run else "removed"
    lines: list[str] = [f"policy: {report.policy.describe()}"]
    if report.removed:
        rows = [("ID", "KIND", "NAME", "STATUS", "STARTED", "RUNS", "SIZE")]
        for removal in report.removed:
            r = removal.run
            rows.append(
                (
                    r.id,
                    r.kind,
                    r.name,
                    r.status,
                    timestamp(r.created_at),
                    str(len(removal.ids)),
                    human_bytes(removal.disk_bytes),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
    for held in report.held:
        lines.append(f"kept {held.id}: {held.reason}")
    count = report.run_count
    shared = report.disk_bytes - report.freed_bytes
    note = f" ({human_bytes(shared)} shared with kept runs stays)" if shared > 0 else ""
    lines.append(
        f"{verb} {count} run{'' if count == 1 else 's'}, freeing "
        f"{human_bytes(report.freed_bytes)}{note}"
        if count
        else "nothing to remove"
    )
    return lines
