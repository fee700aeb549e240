"""What the run store records: runs, their steps, metrics and events, and the status machine.

A **run** is one execution of something kfnb started. Its ``kind`` is one of ``RUN_KINDS``:
``pipeline`` (a notebook run as a DAG), ``train`` (a training job), ``tune`` (a tuning study),
``trial`` (one trial of a study: its parent is the ``tune`` run) and ``batch`` (a parameter sweep:
its children are the ``pipeline`` runs of each set). Runs form a tree through ``parent_id``:
``CHILD_KINDS`` says which kinds a run of each kind may have as children, and the store refuses
any other kind or nesting (``check_kind``, ``check_child``); ``RunTree`` is a run with its
descendants, as the store reads it in one go. Each run keeps its ``spec``, what it ran (for a
pipeline its IR with edges: ``kfnb.spec``), so it is drawn from its record, never from the
notebook's current state. It moves through KFP's statuses::

    PENDING -> RUNNING -> SUCCEEDED | FAILED | PRUNED | CANCELING -> CANCELED
    PENDING -> CANCELED | FAILED;  CANCELING -> FAILED | SUCCEEDED (the run ended first)

``PRUNED`` is a tuning trial stopped early by its study's pruner. Nothing leaves a terminal
status, except that a study or sweep (``RESUMABLE_KINDS``) that was stopped, lost its runner
or (a study) got more trials may be resumed (``Store.resume_run``: back to RUNNING, its finished
children kept). A **step** starts ``PENDING`` and ends ``SUCCEEDED``,
``FAILED``, ``SKIPPED`` (an upstream step did not succeed), ``CANCELED`` or ``CACHED`` (an
earlier result was reused). ``attempt`` counts its starts: a retry goes ``FAILED -> RUNNING``,
which is allowed only while the run has not ended; a finished run's steps are final.

These are plain dataclasses read from the store: snapshots, not live objects. ``to_dict()`` gives
the JSON form the REST API and ``--json`` outputs use: plain JSON data (``kfnb.jsonio.jsonable``),
so non-finite numbers, in metrics or in a parameter an older kfnb stored, become ``None``, which
JSON cannot spell otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from ..jsonio import jsonable
from .errors import InvalidParent, StepNotFound, UnknownRunKind

RunStatus = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELING", "CANCELED", "PRUNED"]
StepStatus = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELED", "CACHED"]

RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
STEP_STATUSES: tuple[str, ...] = get_args(StepStatus)
RunKind = Literal["pipeline", "train", "tune", "trial", "batch"]
RUN_KINDS: tuple[str, ...] = get_args(RunKind)
#: which kinds a run of each kind may have as children (a batch's children are pipeline runs...)
CHILD_KINDS: Mapping[str, frozenset[str]] = {
    "pipeline": frozenset(),
    "train": frozenset(),
    "tune": frozenset({"trial"}),
    "trial": frozenset({"pipeline", "train"}),
    "batch": frozenset({"pipeline"}),
}
TERMINAL_RUN: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "PRUNED"})
#: kinds of run whose runner may pick them up again after they stopped (``Store.resume_run``):
#: a study or a sweep goes on with the children it lacks, its finished children kept
RESUMABLE_KINDS: frozenset[str] = frozenset({"tune", "batch"})
TERMINAL_STEP: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED", "CACHED"})

RUN_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "PENDING": frozenset({"RUNNING", "CANCELED", "FAILED"}),
    # PRUNED: a tuning trial its study stopped early (the pruner judged it unpromising)
    "RUNNING": frozenset({"SUCCEEDED", "FAILED", "CANCELING", "CANCELED", "PRUNED"}),
    "CANCELING": frozenset({"CANCELED", "FAILED", "SUCCEEDED", "PRUNED"}),
}
STEP_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "PENDING": frozenset({"RUNNING", "SKIPPED", "CANCELED", "CACHED", "FAILED"}),
    "RUNNING": frozenset({"SUCCEEDED", "FAILED", "CANCELED"}),
    # a failed step of a run that goes on may still be retried, queued again, or ended for good
    # (FAILED again with the final error, or SKIPPED/CANCELED when the run stops)
    "FAILED": frozenset({"RUNNING", "PENDING", "FAILED", "SKIPPED", "CANCELED"}),
}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def check_kind(kind: object) -> str:
    """``kind`` if it is one of ``RUN_KINDS``, else ``UnknownRunKind`` (with the nearest one)."""
    if not isinstance(kind, str) or kind not in RUN_KINDS:
        raise UnknownRunKind(kind, RUN_KINDS)
    return kind


def check_child(parent_id: str, parent_kind: str, kind: str) -> None:
    """``InvalidParent`` unless a ``parent_kind`` run may have a ``kind`` child."""
    allowed = CHILD_KINDS.get(parent_kind, frozenset())
    if kind not in allowed:
        raise InvalidParent(parent_id, parent_kind, kind, sorted(allowed))


@dataclass
class StepRun:
    """One step of a run: its status, attempts, outputs and the error that ended it."""

    run_id: str
    name: str
    status: StepStatus
    attempt: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    output_notebook: str | None = None
    log: str | None = None
    error: dict[str, Any] | None = None
    gpus: list[str] = field(default_factory=list)
    hash: str | None = None
    cached_from: str | None = None  # ``RUN_ID/STEP`` whose results a CACHED step reused

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass
class Metric:
    """One recorded value of a metric; a metric's history is a curve over ``step`` or time."""

    name: str
    value: float
    step: int | None
    source: str | None
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "value": _finite(self.value)}


@dataclass
class Event:
    """Something that happened to a run; ``id`` grows, so a UI polls with the last id it saw."""

    id: int
    run_id: str
    time: float
    kind: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass
class Run:
    """A run as recorded: identity, status, parameters, steps and the latest metric values."""

    id: str
    kind: str
    name: str
    status: RunStatus
    backend: str
    notebook: str | None
    notebook_hash: str | None
    params: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    parent_id: str | None
    runner_pid: int | None
    runner_host: str | None
    artifacts_dir: str
    steps: list[StepRun] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    # a run that lives elsewhere (KFP): its id there, UI link, host, namespace...; no runner pid
    remote: dict[str, Any] | None = None
    # what the run ran (kfnb.spec): for a pipeline {"pipeline": <view>, "source": ...}
    spec: dict[str, Any] | None = None
    child_count: int = 0  # runs whose parent this run is (a tune run's trials...)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_RUN

    @property
    def pipeline(self) -> dict[str, Any] | None:
        """The pipeline this run ran, as stored when it was submitted (``kfnb.spec``), or
        ``None`` for a run that is not a pipeline or was recorded before runs kept their spec."""
        found = (self.spec or {}).get("pipeline")
        return found if isinstance(found, dict) else None

    def step(self, name: str) -> StepRun:
        for s in self.steps:
            if s.name == name:
                return s
        raise StepNotFound(self.id, name, [s.name for s in self.steps])

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "id": self.id,
                "kind": self.kind,
                "name": self.name,
                "status": self.status,
                "backend": self.backend,
                "notebook": self.notebook,
                "params": self.params,
                "metrics": self.metrics,
                "created_at": self.created_at,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "error": self.error,
                "parent_id": self.parent_id,
                "child_count": self.child_count,
                "remote": self.remote,
                "steps": [asdict(s) for s in self.steps],
                "spec": self.spec,
            }
        )


@dataclass
class RunTree:
    """A run and its descendants: ``children`` oldest first, each a ``RunTree`` again."""

    run: Run
    children: list[RunTree] = field(default_factory=list)

    def walk(self) -> list[Run]:
        """This run and every descendant, depth first (parents before their children)."""
        found = [self.run]
        for child in self.children:
            found.extend(child.walk())
        return found

    def to_dict(self) -> dict[str, Any]:
        """The run's ``to_dict()`` with ``"children"``: the same form for each child."""
        return {**self.run.to_dict(), "children": [c.to_dict() for c in self.children]}
