"""The katib backend's options (``tune(..., backend="katib", options={...})``) and the
Experiment's name, checked as Katib's webhook would before anything is sent."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ..backends import BackendError
from ..config import nearest

if TYPE_CHECKING:
    from .target import Made

RESUME_POLICIES = ("Never", "LongRunning", "FromVolume")
MAX_NAME = 40  # Katib's webhook: trial and job names are built from the experiment's
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
SHAPE_OPTIONS = ("procs_per_node", "gpus_per_node", "nodes")


@dataclass(frozen=True)
class Options:
    """What ``options`` may say to the katib backend (all optional)."""

    namespace: str | None = None
    image: str | None = None  # the trials' image: Python with kfnb (torch for a function)
    name: str | None = None  # the Experiment's name (default: from the target and run id)
    cpu: str | None = None
    memory: str | None = None
    gpus: int = 0  # a notebook trial's GPUs
    procs_per_node: int = 1  # a function trial's TrainJob shape
    gpus_per_node: int = 0
    nodes: int = 1
    resume_policy: str = "Never"  # Katib's: LongRunning or FromVolume let a study go on later
    kubeconfig: str | None = None
    context: str | None = None


_INTS = ("gpus", "procs_per_node", "gpus_per_node", "nodes")


def parse_options(options: Mapping[str, Any], made: Made) -> Options:
    """``options`` as ``Options``; an unknown one, or one that does not fit the target, is a
    ``BackendError`` naming the known ones."""
    known = [f.name for f in fields(Options)]
    values: dict[str, Any] = {}
    for key, value in options.items():
        if key not in known:
            raise BackendError(
                f"unknown option {key!r} of the katib backend",
                fix=f"{nearest(key, known)}known: {', '.join(known)}",
            )
        if value is None:
            continue
        if key in _INTS:
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise BackendError(f"option {key} takes a whole number, not {value!r}") from None
            if value < (1 if key in ("procs_per_node", "nodes") else 0):
                raise BackendError(f"option {key} cannot be {value}")
        else:
            value = str(value)
        values[key] = value
    opts = Options(**values)
    if opts.resume_policy not in RESUME_POLICIES:
        raise BackendError(
            f"unknown resume_policy {opts.resume_policy!r}",
            fix=f"Katib's: {', '.join(RESUME_POLICIES)}",
        )
    if made.program is None:
        shaped = [k for k in SHAPE_OPTIONS if k in values]
        if shaped:
            raise BackendError(
                f"{', '.join(shaped)} shape a training function's TrainJob; a notebook trial is "
                "one pod",
                fix="give a notebook trial gpus=N (and cpu, memory)",
            )
    elif "gpus" in values:
        raise BackendError(
            "a training function's trials are TrainJobs: their GPUs are gpus_per_node",
            fix="pass gpus_per_node=N (and nodes, procs_per_node)",
        )
    if opts.name is not None:
        check_name(opts.name)
    return opts


def check_name(name: str) -> str:
    """``name`` if Katib takes it as an experiment name, else a ``BackendError``."""
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise BackendError(
            f"{name!r} cannot name a Katib experiment: lower-case letters, digits and '-', "
            f"starting with a letter, at most {MAX_NAME} characters",
            fix="pass another name, e.g. name='churn-lr'",
        )
    return name


def experiment_name(made: Made, run_id: str) -> str:
    """``kfnb-<target>-<run id's last part>`` (no run yet, as in a dry run: a hash of the
    target's name), short enough for Katib's 40 characters."""
    stem = re.sub(r"[^a-z0-9-]+", "-", made.name.lower()).strip("-")[:20].strip("-") or "study"
    tail = (
        run_id.rsplit("-", 1)[-1].lower()
        if run_id
        else hashlib.sha1(made.name.encode()).hexdigest()[:6]
    )
    return check_name(f"kfnb-{stem}-{tail}")
