"""What a study is: ``StudySpec`` (space, objective, algorithm, budget), kept in its record.

A ``tune`` run's spec is ``{"study": StudySpec.to_dict(), ...}`` (plus ``"pipeline"``, the
pipeline view, when the study tunes a notebook), so every surface and a resumed runner read the
study from the store. ``from_notebook`` reads Kale's ``katib_metadata`` (objective, algorithm,
parameters, trial counts) from a notebook's metadata, as Kale's Katib dialog stores it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .algorithms import Median, algorithm, pruning
from .space import Space, SpaceError, parse_space, space_to_dict

DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class StudySpec:
    """A study: what to search, what to optimise, how, and how many trials."""

    space: Space
    objective: str
    direction: str = "minimize"
    algorithm: str = "tpe"
    trials: int = 20
    parallel: int = 1
    prune: Median | None = None
    seed: int | None = None
    max_failed: int | None = None  # stop the study after this many failed trials (None: never)
    fixed: dict[str, Any] = field(default_factory=dict)  # parameters every trial gets as given
    target: dict[str, Any] = field(default_factory=dict)  # {"notebook": path} | {"function": n}
    initial: list[dict[str, Any]] = field(default_factory=list)  # parameter sets tried first

    def check(self) -> StudySpec:
        """Normalised (Katib's algorithm names to kfnb's), or a ``SpaceError`` naming the fix."""
        if not isinstance(self.objective, str) or not self.objective.strip():
            raise SpaceError(
                "a study needs an objective: the metric to optimise",
                fix="pass objective='accuracy' (a name the notebook records with "
                "kfnb.log_metric or in its pipeline-metrics cell)",
            )
        if self.direction not in DIRECTIONS:
            raise SpaceError(
                f"direction must be minimize or maximize, not {self.direction!r}",
                fix="pass direction='maximize' (on the command line: --maximize)",
            )
        for name, value in (("trials", self.trials), ("parallel", self.parallel)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpaceError(f"{name} must be a positive integer, not {value!r}")
        for given in self.initial:
            unknown = sorted(set(given) - set(self.space))
            if unknown or not isinstance(given, Mapping):
                raise SpaceError(
                    f"initial parameters {given!r} name {', '.join(map(repr, unknown))}, which "
                    "the search space does not tune",
                    fix=f"use the space's names: {', '.join(self.space)}",
                )
        if self.max_failed is not None and self.max_failed < 1:
            raise SpaceError(f"max_failed must be at least 1, not {self.max_failed!r}")
        return replace(self, algorithm=algorithm(self.algorithm).name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": space_to_dict(self.space),
            "objective": self.objective,
            "direction": self.direction,
            "algorithm": self.algorithm,
            "trials": self.trials,
            "parallel": self.parallel,
            "prune": self.prune.to_dict() if self.prune else None,
            "seed": self.seed,
            "max_failed": self.max_failed,
            "fixed": dict(self.fixed),
            "target": dict(self.target),
            "initial": [dict(p) for p in self.initial],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudySpec:
        return cls(
            space=parse_space(data["space"]),
            objective=data["objective"],
            direction=data.get("direction", "minimize"),
            algorithm=data.get("algorithm", "tpe"),
            trials=int(data.get("trials", 20)),
            parallel=int(data.get("parallel", 1)),
            prune=pruning(data.get("prune")),
            seed=data.get("seed"),
            max_failed=data.get("max_failed"),
            fixed=dict(data.get("fixed") or {}),
            target=dict(data.get("target") or {}),
            initial=[dict(p) for p in data.get("initial") or []],
        )


def katib_metadata(path: str | Path) -> dict[str, Any]:
    """Kale's ``kubeflow_notebook.katib_metadata`` of the notebook at ``path`` ({} if none)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    kale = nb.metadata.get("kubeflow_notebook") or {}
    found = kale.get("katib_metadata") if isinstance(kale, Mapping) else None
    if found is None:
        return {}
    if not isinstance(found, Mapping):
        raise SpaceError(
            f"{path}: katib_metadata must be an object, not {type(found).__name__}",
            fix="correct the notebook metadata",
        )
    return dict(found)


def from_metadata(meta: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``tune()``'s keywords that Kale's ``katib_metadata`` gives (only those it has)."""
    out: dict[str, Any] = {}
    if meta.get("parameters"):
        out["space"] = parse_space(list(meta["parameters"]), where=f"{where}: katib_metadata")
    objective = meta.get("objective") or {}
    if objective.get("objectiveMetricName"):
        out["objective"] = objective["objectiveMetricName"]
    if objective.get("type"):
        out["direction"] = objective["type"]
    algo = (meta.get("algorithm") or {}).get("algorithmName")
    if algo:
        out["algorithm"] = algo
    for key, name in (
        ("maxTrialCount", "trials"),
        ("parallelTrialCount", "parallel"),
        ("maxFailedTrialCount", "max_failed"),
    ):
        if meta.get(key) is not None:
            out[name] = int(meta[key])
    return out
