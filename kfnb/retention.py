"""Retention: which ended runs to remove (a ``Policy``) and removing them (``collect``).

Runs, their artifacts folders (``KFNB_HOME/runs/<id>/``) and so the step cache grow until the
disk fills; ``kfnb gc``, ``collect()`` and the server's periodic policy
(``KfnbServerSettings.gc_*``) remove what a policy selects.

**The unit is a run tree.** A policy judges top-level runs (what ``kfnb runs`` lists); the runs
under one (a study's trials, a sweep's sets) go with it and are never removed alone, so neither
a parent without its children nor orphaned children is ever left. Kind, status and age are the
top-level run's: ``--kind pipeline`` removes pipeline runs started on their own, not a sweep's.

**Every criterion narrows what goes** (they are ANDed): a tree goes when its top-level run has
one of ``kinds`` and ``statuses`` (any when not given), is not one of the ``keep_last`` newest
top-level runs that match those, and ended more than ``older_than`` ago (its ``finished_at``,
else its creation). A policy with no criterion selects nothing (``PolicyError``: say what goes).

**Hard rules**, whatever the policy says:

- a tree in which any run has not ended (PENDING, RUNNING, CANCELING) is kept;
- a tree holding a run that a kept run's cached steps reused (a step's ``cached_from`` is
  ``RUN/STEP``) is kept, and so on transitively: a kept run keeps its cache sources. (The
  cache hard-links files, so removing a source would not break the kept run's data, but its
  record would point at a run that no longer exists.)

``Store.delete_runs`` checks both again in the transaction that deletes a tree, so a run
resumed, or a cache hit taken, between the plan and the removal keeps its tree; such a tree is
reported among ``held``. Deleting a run deletes its record (steps, events, metrics, params and
artifacts rows: ``ON DELETE CASCADE``) and then its artifacts folder.

**Disk use** of a run is the bytes of the regular files in its artifacts folder (each inode once,
symbolic links not followed); a run that has ended is measured once per process and remembered
(until it changes status). What a removal frees is smaller when files are hard links shared
with kept runs (step cache hits): ``freed_bytes`` counts a file only when every link to it is
in a removed folder.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import KfnbError
from .tracking import Run, Store, StoreError, TrackingError
from .tracking.models import RUN_KINDS, RUN_STATUSES, TERMINAL_RUN

__all__ = [
    "Held",
    "Policy",
    "PolicyError",
    "Removal",
    "Report",
    "collect",
    "disk_usage",
    "folder_bytes",
    "human_bytes",
    "parse_duration",
    "plan",
]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)


class PolicyError(KfnbError):
    """A retention policy that cannot be applied: a bad duration, status or kind, or none."""


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"2w"`` or ``"1d12h"``; a number is
    seconds already."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise PolicyError(f"a duration cannot be negative ({text})")
        return float(text)
    raw = str(text).strip()
    parts = _DURATION.findall(raw)
    if not raw or not parts or _DURATION.sub("", raw).strip():
        raise PolicyError(
            f"{text!r} is not a duration",
            fix="a number with a unit, s m h d or w: 30d, 12h, 90m, 1d12h",
        )
    return sum(float(n) * _UNITS[unit.lower()] for n, unit in parts)


def human_bytes(count: int | None) -> str:
    """``"0 B"``, ``"512 B"``, ``"1.5 KiB"``, ``"23 MiB"``, ``"1.2 GiB"``; "" when unknown."""
    if count is None:
        return ""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# -- the policy ---------------------------------------------------------------------------------
def _names(value: str | Iterable[str] | None, known: Sequence[str], what: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    found: set[str] = set()
    for item in items:
        name = item.strip()
        if not name:
            continue
        name = name.upper() if what == "status" else name.lower()
        if name not in known:
            raise PolicyError(f"unknown run {what} {item.strip()!r}", fix=f"use {', '.join(known)}")
        found.add(name)
    return frozenset(found)


@dataclass(frozen=True)
class Policy:
    """What goes: see the module's docstring. ``older_than`` in seconds."""

    keep_last: int | None = None
    older_than: float | None = None
    statuses: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        keep_last: int | None = None,
        older_than: str | float | None = None,
        status: str | Iterable[str] | None = None,
        kind: str | Iterable[str] | None = None,
    ) -> Policy:
        """A policy from user input: ``older_than`` a duration (``"30d"``), ``status`` and
        ``kind`` names or comma-separated lists (``"failed,canceled"``)."""
        if keep_last is not None and keep_last < 0:
            raise PolicyError(f"keep_last cannot be negative ({keep_last})", fix="e.g. 10")
        statuses = _names(status, RUN_STATUSES, "status")
        open_ones = sorted(statuses - TERMINAL_RUN)
        if open_ones:
            raise PolicyError(
                f"runs that have not ended ({', '.join(open_ones)}) are never removed",
                fix=f"pick among {', '.join(sorted(TERMINAL_RUN))}",
            )
        return cls(
            keep_last=keep_last,
            older_than=None
            if older_than is None or older_than == ""
            else parse_duration(older_than),
            statuses=statuses,
            kinds=_names(kind, RUN_KINDS, "kind"),
        )

    @property
    def empty(self) -> bool:
        """Whether it says nothing (and so selects nothing)."""
        return (
            self.keep_last is None
            and self.older_than is None
            and not self.statuses
            and not self.kinds
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "keep_last": self.keep_last,
            "older_than": self.older_than,
            "statuses": sorted(self.statuses),
            "kinds": sorted(self.kinds),
        }

    def describe(self) -> str:
        """The policy in words (``"failed runs ended over 30d ago, the last 5 kept"``)."""
        what = "/".join(sorted(s.lower() for s in self.statuses))
        what = f"{what} " if what else ""
        what += "/".join(sorted(self.kinds)) + " runs" if self.kinds else "runs"
        if self.older_than is not None:
            what += f" ended over {_short(self.older_than)} ago"
        if self.keep_last is not None:
            what += f", the last {self.keep_last} kept"
        return what

    def matches(self, run: Run) -> bool:
        """Whether the top-level run ``run`` has a kind and status the policy names."""
        return (not self.kinds or run.kind in self.kinds) and (
            not self.statuses or run.status in self.statuses
        )


def _short(seconds: float) -> str:
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


# -- disk use -----------------------------------------------------------------------------------
#: (dev, inode) -> (size, links): the regular files of a folder, each inode once
Inodes = dict[tuple[int, int], tuple[int, int]]


def _inodes(folder: Path) -> Inodes:
    found: Inodes = {}
    stack = [str(folder)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:  # gone, or not readable: counts as nothing
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    found[(st.st_dev, st.st_ino)] = (st.st_size, st.st_nlink)
            except OSError:
                continue
    return found


def folder_bytes(folder: str | Path) -> int:
    """Bytes of the regular files under ``folder`` (each inode once; 0 if it is missing)."""
    return sum(size for size, _ in _inodes(Path(folder)).values())


_sizes: dict[str, tuple[str, float | None, int]] = {}
_sizes_lock = threading.Lock()
_SIZES_MAX = 20_000


def run_bytes(run: Run) -> int:
    """Disk use of ``run``'s artifacts folder; an ended run's is remembered while its status
    and end stay the same (an open run's folder is measured at every call)."""
    folder = run.artifacts_dir
    if run.status not in TERMINAL_RUN:
        return folder_bytes(folder)
    with _sizes_lock:
        known = _sizes.get(folder)
    if known is not None and known[:2] == (run.status, run.finished_at):
        return known[2]
    size = folder_bytes(folder)
    with _sizes_lock:
        if len(_sizes) >= _SIZES_MAX:
            _sizes.clear()
        _sizes[folder] = (run.status, run.finished_at, size)
    return size


def _forget(folders: Iterable[str]) -> None:
    with _sizes_lock:
        for folder in folders:
            _sizes.pop(folder, None)


def disk_usage(runs: Iterable[Run]) -> dict[str, int]:
    """Run id -> bytes of its artifacts folder (``run_bytes``)."""
    return {run.id: run_bytes(run) for run in runs}


def _freed(tables: Iterable[Inodes]) -> int:
    """Bytes the disk gets back when these folders go: a file only when all its links go."""
    seen: dict[tuple[int, int], list[int]] = {}
    for table in tables:
        for key, (size, links) in table.items():
            entry = seen.setdefault(key, [size, links, 0])
            entry[2] += 1
    return sum(size for size, links, count in seen.values() if count >= links)


# -- the plan and the removal -------------------------------------------------------------------
@dataclass
class Removal:
    """One tree that goes: its top-level run and every run under it (``ids``, root first)."""

    run: Run
    ids: list[str]
    disk_bytes: int = 0
    _inodes: list[Inodes] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        r = self.run
        return {
            "id": r.id,
            "kind": r.kind,
            "name": r.name,
            "status": r.status,
            "created_at": r.created_at,
            "finished_at": r.finished_at,
            "runs": len(self.ids),
            "disk_bytes": self.disk_bytes,
        }


@dataclass
class Held:
    """A tree the policy selected that stays, and why."""

    id: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "reason": self.reason}


@dataclass
class Report:
    """What ``collect`` removed (or, ``dry_run``, would remove)."""

    policy: Policy
    dry_run: bool
    removed: list[Removal] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    freed_bytes: int = 0

    @property
    def disk_bytes(self) -> int:
        """Bytes of the removed folders (``freed_bytes`` leaves out files kept runs share)."""
        return sum(r.disk_bytes for r in self.removed)

    @property
    def run_count(self) -> int:
        """Runs removed, those under the top-level ones included."""
        return sum(len(r.ids) for r in self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "policy": self.policy.to_dict(),
            "removed": [r.to_dict() for r in self.removed],
            "held": [h.to_dict() for h in self.held],
            "run_count": self.run_count,
            "disk_bytes": self.disk_bytes,
            "freed_bytes": self.freed_bytes,
        }


def _trees(runs: Sequence[Run]) -> tuple[list[Run], dict[str, list[str]]]:
    """Top-level runs, newest first, and each one's tree (its id first, then those under it)."""
    by_id = {r.id: r for r in runs}
    under: dict[str, list[str]] = {}
    for r in runs:
        if r.parent_id is not None and r.parent_id in by_id:
            under.setdefault(r.parent_id, []).append(r.id)
    roots = [r for r in runs if r.parent_id is None or r.parent_id not in by_id]
    trees: dict[str, list[str]] = {}
    for root in roots:
        ids, stack = [], [root.id]
        while stack:
            rid = stack.pop()
            ids.append(rid)
            stack.extend(sorted(under.get(rid, []), reverse=True))
        trees[root.id] = ids
    return sorted(roots, key=lambda r: r.id, reverse=True), trees


def _ended(run: Run) -> float:
    return run.finished_at if run.finished_at is not None else run.created_at


def plan(store: Store, policy: Policy, *, now: float | None = None) -> Report:
    """What ``policy`` removes now, with the disk it frees; nothing is removed."""
    if policy.empty:
        raise PolicyError(
            "a retention policy needs at least one criterion; none would remove every run",
            fix="give --keep-last N, --older-than 30d, --status failed,canceled or --kind KIND",
        )
    now = time.time() if now is None else now
    runs = store.list_runs(limit=None)
    by_id = {r.id: r for r in runs}
    roots, trees = _trees(runs)
    matching = [r for r in roots if policy.matches(r)]
    selected = matching[policy.keep_last :] if policy.keep_last is not None else matching
    if policy.older_than is not None:
        selected = [r for r in selected if now - _ended(r) >= policy.older_than]
    report = Report(policy, dry_run=True)
    going: dict[str, Run] = {}
    for root in selected:
        active = [by_id[i] for i in trees[root.id] if by_id[i].status not in TERMINAL_RUN]
        if active:
            report.held.append(Held(root.id, f"run {active[0].id} is {active[0].status}"))
        else:
            going[root.id] = root
    tree_of = {i: root for root, ids in trees.items() for i in ids}
    changed = True
    while changed:  # a kept run keeps the runs its cached steps reused, and theirs
        changed = False
        leaving = {i for top in going for i in trees[top]}
        for run in runs:
            if run.id in leaving:
                continue
            for step in run.steps:
                source = (step.cached_from or "").partition("/")[0]
                top_id = tree_of.get(source)
                if top_id is not None and source in leaving and top_id in going:
                    del going[top_id]
                    report.held.append(
                        Held(
                            top_id,
                            f"step {step.name!r} of kept run {run.id} reused the results "
                            f"of run {source}",
                        )
                    )
                    changed = True
                    leaving -= set(trees[top_id])
    for root in selected:
        if root.id in going:
            ids = trees[root.id]
            tables = [_inodes(Path(by_id[i].artifacts_dir)) for i in ids]
            size = sum(s for table in tables for s, _ in table.values())
            report.removed.append(Removal(root, ids, size, tables))
    report.freed_bytes = _freed(t for r in report.removed for t in r._inodes)
    return report


def collect(
    store: Store, policy: Policy, *, dry_run: bool = False, now: float | None = None
) -> Report:
    """Remove what ``policy`` selects (``plan``), tree by tree; ``dry_run``: only say what.

    A tree ``Store.delete_runs`` refuses at the last moment (a run resumed, or a new cache hit
    on one of its runs, since the plan) stays and is reported in ``held``."""
    report = plan(store, policy, now=now)
    if dry_run:
        return report
    done: list[Removal] = []
    pending = list(report.removed)
    refused: dict[str, str] = {}
    while pending:  # a tree another removed tree reused goes once that one has gone
        left: list[Removal] = []
        for removal in pending:
            try:
                store.delete_runs(removal.ids)
            except StoreError:
                raise
            except TrackingError as err:
                refused[removal.run.id] = err.message
                left.append(removal)
                continue
            finally:
                _forget(str(store.runs_dir / i) for i in removal.ids)
            done.append(removal)
        if len(left) == len(pending):
            report.held += [Held(r.run.id, refused[r.run.id]) for r in left]
            break
        pending = left
    report.removed = [r for r in report.removed if r in done]
    report.freed_bytes = _freed(t for r in done for t in r._inodes)
    report.dry_run = False
    return report
