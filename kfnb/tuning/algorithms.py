"""Search algorithms and early stopping, by one name for both engines.

``ALGORITHMS`` maps kfnb's names to the Optuna sampler the local backend builds and Katib's
``algorithmName``; Katib's own names are read as aliases (``sobol`` is ``qmc``,
``multivariate-tpe`` is ``tpe``), so Kale's ``katib_metadata`` works as it is. ``PRUNERS`` does
the same for early stopping: ``median`` is Optuna's ``MedianPruner`` and Katib's ``medianstop``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import nearest
from ..errors import MissingDependencyError
from .space import Distribution, SpaceError


@dataclass(frozen=True)
class Algorithm:
    name: str
    katib: str | None  # Katib's algorithmName (None: Katib has none)
    help: str


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("tpe", "tpe", "tree-structured Parzen estimator (default)"),
        Algorithm("random", "random", "independent random samples"),
        Algorithm("grid", "grid", "every point of the grid (floats need a step)"),
        Algorithm("cmaes", "cmaes", "CMA evolution strategy (numbers only)"),
        Algorithm("qmc", "sobol", "quasi-random Sobol sequence"),
    )
}
ALIASES = {"sobol": "qmc", "multivariate-tpe": "tpe", "cma-es": "cmaes", "cma": "cmaes"}
PRUNERS = {"median": "medianstop"}


@dataclass(frozen=True)
class Median:
    """Median early stopping: after ``startup_trials`` finished trials, a trial whose best
    intermediate value at a step (from ``warmup_steps`` on) is worse than the median of the
    earlier trials' values at that step is stopped (Optuna ``MedianPruner``, Katib
    ``medianstop`` with ``min_trials_required`` and ``start_step``)."""

    startup_trials: int = 3
    warmup_steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": "median",
            "startup_trials": self.startup_trials,
            "warmup_steps": self.warmup_steps,
        }


def algorithm(name: str) -> Algorithm:
    """The algorithm ``name`` (kfnb's or Katib's name), or a ``SpaceError`` naming the known."""
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in ALGORITHMS:
        raise SpaceError(
            f"unknown search algorithm {name!r}",
            fix=f"{nearest(str(name), list(ALGORITHMS))}known: {', '.join(ALGORITHMS)}",
        )
    return ALGORITHMS[key]


def pruning(value: Any) -> Median | None:
    """``None``/``"none"``: no early stopping; ``"median"`` (or ``medianstop``), a ``Median``,
    or its dict form: median stopping."""
    if value is None or value is False or value == "none":
        return None
    if isinstance(value, Median):
        return value
    if isinstance(value, str) and value.lower() in ("median", "medianstop"):
        return Median()
    if isinstance(value, Mapping) and value.get("name") in ("median", "medianstop"):
        return Median(int(value.get("startup_trials", 3)), int(value.get("warmup_steps", 0)))
    raise SpaceError(
        f"unknown early stopping {value!r}",
        fix="prune='median', kfnb.Median(startup_trials=3, warmup_steps=0), or None",
    )


def optuna_module() -> Any:
    """``optuna``, or a ``MissingDependencyError`` naming the extra that brings it."""
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError("optuna", "tune", "tuning on this machine") from None
    return optuna


def sampler(name: str, space: Mapping[str, Distribution], seed: int | None) -> Any:
    """The Optuna sampler of algorithm ``name`` over ``space``."""
    optuna = optuna_module()

    algo = algorithm(name).name
    if algo == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if algo == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algo == "grid":
        # the runner queues every grid point (``grid_points``): Optuna's GridSampler stops its
        # study from inside ``tell``, which only works under ``optimize``
        return optuna.samplers.RandomSampler(seed=seed)
    if algo == "cmaes":
        choices = [n for n, d in space.items() if d.kind == "choice"]
        if choices:
            raise SpaceError(
                f"CMA-ES searches numbers; {', '.join(map(repr, choices))} "
                f"{'is a choice' if len(choices) == 1 else 'are choices'}",
                fix="use tpe or random, or tune the choice separately",
            )
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise MissingDependencyError("cmaes", "tune", "algorithm 'cmaes'") from None
        return optuna.samplers.CmaEsSampler(seed=seed)
    with warnings.catch_warnings():  # "experimental" since Optuna 3.0; kfnb pins Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(seed=seed, qmc_type="sobol", scramble=seed is not None)


def grid_points(space: Mapping[str, Distribution], seed: int | None) -> list[dict[str, Any]]:
    """Every point of the grid over ``space``, in an order shuffled by ``seed``."""
    import itertools
    import random

    names = list(space)
    points = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(space[n].grid(n) for n in names))
    ]
    random.Random(seed).shuffle(points)
    return points


def pruner(median: Median | None) -> Any:
    optuna = optuna_module()

    if median is None:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=median.startup_trials, n_warmup_steps=median.warmup_steps
    )
