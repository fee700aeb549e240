"""Hyperparameter tuning from the notebook: ``kfnb.tune(notebook_or_fn, space=..., ...)``.

A study searches ``space`` (``space``: ``Float``, ``Int``, ``Choice``; or ``space.yaml``; or
Kale's ``katib_metadata``) for the parameters that optimise ``objective``, a metric the trials
record. Each trial runs the notebook as a pipeline (parameters set from the trial) or the
training function (arguments set from the trial). Backends:

- ``local`` (``local``): Optuna (TPE, random, grid, CMA-ES, QMC; median pruning) drives trials
  on this machine, ``parallel`` at a time; steps that read no tuned parameter are computed once
  and served from the step cache to every trial;
- ``katib`` (``katib``): a Katib ``Experiment`` on a Kubeflow cluster, its trials followed into
  the store.

The study is a ``tune`` run in the store, each trial a ``trial`` run under it, the trial's
pipeline run or training job under the trial (``study.Study``, ``view.study_view``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..backends import StoreRunHandle
from ..errors import KfnbError, NotResumable
from .algorithms import ALGORITHMS, Median
from .backends import TUNERS, Tuner, get_tuner
from .space import Choice, Float, Int, SpaceError, check_space, load_space_file, parse_space
from .spec import StudySpec
from .study import Study
from .target import Made, make_target
from .view import study_view

if TYPE_CHECKING:
    from ..backends import RunHandle
    from ..settings import Settings
    from ..tracking import Run, Store

__all__ = [
    "ALGORITHMS",
    "BACKENDS",
    "TUNERS",
    "Choice",
    "Float",
    "Int",
    "Median",
    "NotResumable",
    "SpaceError",
    "Study",
    "StudySpec",
    "Tuner",
    "attach",
    "attach_record",
    "load_space_file",
    "parse_space",
    "study_view",
    "tune",
]


BACKENDS = tuple(TUNERS)


DEFAULTS = {"direction": "minimize", "algorithm": "tpe", "trials": 20, "parallel": 1}


def tune(
    target: Any = None,
    space: Any = None,
    *,
    objective: str | None = None,
    direction: str | None = None,
    trials: int | None = None,
    parallel: int | None = None,
    algorithm: str | None = None,
    prune: Any = None,
    seed: int | None = None,
    max_failed: int | None = None,
    initial: Iterable[Mapping[str, Any]] = (),
    params: Mapping[str, Any] | None = None,
    param_strings: Iterable[tuple[str, str]] = (),
    backend: str = "local",
    options: Mapping[str, Any] | None = None,
    wait: bool = False,
    resume: str | None = None,
    dry_run: bool = False,
    store: Store | None = None,
    settings: Settings | None = None,
) -> Any:
    """Tune ``target``, a notebook (path or ``Pipeline``) or a training function.

    ``space`` maps parameter names to ``kfnb.Float``/``Int``/``Choice`` (or short-form dicts, a
    Katib ``parameters`` list, a ``space.yaml`` path); what it leaves unset comes from the
    notebook's ``katib_metadata``. ``params`` fix other parameters for every trial. ``objective``
    is the metric to optimise (``direction`` minimize or maximize), ``trials`` how many trials
    end the study, ``parallel`` how many run at once, ``algorithm`` tpe (default), random, grid,
    cmaes or qmc, ``prune`` ``"median"`` (or ``kfnb.Median(...)``) for early stopping;
    ``initial`` parameter sets are tried first (a known baseline).
    ``options`` go to the backend (local: the pipeline backend's options, or a training
    function's ``kfnb.train`` keywords; katib: ``namespace``, ``image``...). Returns the
    ``Study`` at once (``wait=True``: once it ended; ``dry_run``, katib: the Experiment).
    ``resume=STUDY_ID`` goes on with a stopped study (its target and settings as recorded).
    """
    from ..settings import Settings

    settings = settings if settings is not None else Settings.load()
    options = dict(options or {})
    if resume is not None:
        study = _resume(target, resume, store or settings.store(), settings, options)
    else:
        tuner = get_tuner(backend)
        given = {
            "space": space,
            "objective": objective,
            "direction": direction,
            "trials": trials,
            "parallel": parallel,
            "algorithm": algorithm,
            "max_failed": max_failed,
        }
        made = make_target(target, params, param_strings)
        spec = _spec(made, given, prune, seed, [dict(p) for p in initial])
        if dry_run:
            return tuner.dry_run(spec, made, options, settings)
        store = store if store is not None else settings.store()
        handle = tuner.submit(spec, made, options, store, settings)
        study = Study(store, handle.id, handle, target=made.kept, settings=settings)
    if wait:
        study.wait()
    return study


def _spec(
    made: Made,
    given: dict[str, Any],
    prune: Any,
    seed: int | None,
    initial: list[dict[str, Any]],
) -> StudySpec:
    from .algorithms import pruning

    chosen = {**DEFAULTS, **made.metadata, **{k: v for k, v in given.items() if v is not None}}
    raw = chosen.get("space")
    if raw is None:
        raise SpaceError(
            f"no search space for {made.owner}",
            fix="pass space={'lr': kfnb.Float(1e-4, 1e-1, log=True), ...}, or give the "
            "notebook Kale's katib_metadata",
        )
    space = (
        load_space_file(os.fspath(raw)) if isinstance(raw, (str, os.PathLike)) else parse_space(raw)
    )
    check_space(space, made.parameters, made.owner)
    both = sorted(set(space) & set(made.fixed))
    if both:
        raise SpaceError(
            f"{', '.join(map(repr, both))} is both tuned and fixed",
            fix="leave it out of params, or out of the space",
        )
    if made.program is not None:
        missing = [n for n in made.program.required if n not in space and n not in made.fixed]
        if missing:
            raise SpaceError(
                f"{made.owner} needs {', '.join(map(repr, missing))}, which neither the space "
                "nor params sets",
                fix="tune it, or fix it with params={...}",
            )
    if chosen.get("objective") is None:
        metrics = [m.name for m in made.pipeline.metrics] if made.pipeline is not None else []
        hint = f" (the notebook's metrics: {', '.join(metrics)})" if metrics else ""
        raise SpaceError(
            f"a study needs an objective: the metric to optimise{hint}",
            fix="pass objective='accuracy' (a metric the trials record with kfnb.log_metric "
            "or the pipeline-metrics cell)",
        )
    return StudySpec(
        space=space,
        objective=str(chosen["objective"]),
        direction=str(chosen["direction"]),
        algorithm=str(chosen["algorithm"]),
        trials=chosen["trials"],
        parallel=chosen["parallel"],
        prune=pruning(prune),
        seed=seed,
        max_failed=chosen.get("max_failed"),
        fixed=dict(made.fixed),
        target=made.target_info(),
        initial=initial,
    ).check()


def _resume(
    target: Any, study_id: str, store: Store, settings: Settings, options: dict[str, Any]
) -> Study:
    record = store.get_run(study_id)
    if record.kind != "tune":
        raise KfnbError(
            f"run {record.id} is a {record.kind} run, not a study",
            fix="pass the id of a tune run (kfnb runs --kind tune)",
        )
    store.recover()
    record = store.get_run(record.id)
    if not record.done:
        raise NotResumable(
            f"study {record.id} is still {record.status} (runner pid {record.runner_pid})",
            fix=f"stop it first (kfnb cancel {record.id}), or let it run",
        )
    spec = StudySpec.from_dict((record.spec or {})["study"])
    tuner = get_tuner(record.backend)
    if target is None and spec.target.get("notebook"):
        target = spec.target["notebook"]
    made = None
    if target is not None:
        made = make_target(target, spec.fixed, ())
        check_space(spec.space, made.parameters, made.owner)
    handle = tuner.resume(store, record, spec, made, options, settings)
    kept = made.kept if made is not None else target
    return Study(store, record.id, handle, target=kept, settings=settings)


def attach(run_id: str, settings: Settings | None = None) -> Study:
    """The study ``run_id`` (or a unique prefix), from any process."""
    from ..settings import Settings

    settings = settings if settings is not None else Settings.load()
    store = settings.store()
    record = store.get_run(run_id)
    return Study(store, record.id, attach_record(store, record, settings), settings=settings)


def attach_record(store: Store, record: Run, settings: Settings) -> RunHandle:
    """A handle on the recorded study ``record`` (a Katib one through its cluster), or on one
    of its trials (followed through the store: its study's runner drives it)."""
    if record.kind == "tune":
        return get_tuner(record.backend).attach(store, record, settings)
    return StoreRunHandle(store, record.id)
