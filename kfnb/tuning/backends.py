"""Tuning backends, by name: where a study's trials run (``kfnb.tune(..., backend=NAME)``).

A ``Tuner`` starts a study (``submit``: record the ``tune`` run and start it), shows what it
would create without creating it (``dry_run``), goes on with one that stopped (``resume``) and
gives a handle on a recorded one (``attach``). ``local`` runs trials on this machine with Optuna
(``local.StudyRunner``); ``katib`` creates a Katib Experiment (``katib``). The facade and the
surfaces ask the tuner; none of them branches on its name.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..backends import BackendError, StoreRunHandle
from ..config import nearest

if TYPE_CHECKING:
    from ..backends import RunHandle
    from ..settings import Settings
    from ..tracking import Run, Store
    from .spec import StudySpec
    from .target import Made


class Tuner(abc.ABC):
    """Runs a study's trials somewhere."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abc.abstractmethod
    def submit(
        self,
        spec: StudySpec,
        made: Made,
        options: Mapping[str, Any],
        store: Store,
        settings: Settings,
    ) -> RunHandle:
        """Record the study (a ``tune`` run holding ``spec``) and start it."""

    @abc.abstractmethod
    def resume(
        self,
        store: Store,
        record: Run,
        spec: StudySpec,
        made: Made | None,
        options: Mapping[str, Any],
        settings: Settings,
    ) -> RunHandle:
        """Go on with the stopped study ``record`` (``made``: what it tunes, when known)."""

    def dry_run(
        self, spec: StudySpec, made: Made, options: Mapping[str, Any], settings: Settings
    ) -> Any:
        """What ``submit`` would create, created nowhere."""
        raise BackendError(
            f"dry_run shows what a cluster creates; the {self.name} backend creates nothing "
            "to show",
            fix="pass backend='katib' with dry_run",
        )

    def attach(self, store: Store, record: Run, settings: Settings) -> RunHandle:
        """A handle on the recorded study ``record``, from any process."""
        return StoreRunHandle(store, record.id)


class LocalTuner(Tuner):
    name = "local"
    description = "this machine: Optuna, trials on warm kernels sharing the step cache"

    def submit(
        self,
        spec: StudySpec,
        made: Made,
        options: Mapping[str, Any],
        store: Store,
        settings: Settings,
    ) -> RunHandle:
        from ..spec import pipeline_view
        from .algorithms import optuna_module

        optuna_module()  # without the tune extra: the error names it, before anything starts
        target = self._target(made, settings, options)  # a bad option fails before anything
        store.recover()
        extra = {"pipeline": pipeline_view(made.pipeline)} if made.pipeline is not None else {}
        record = store.create_run(
            kind="tune",
            name=made.name,
            backend=self.name,
            notebook=made.notebook,
            notebook_hash=None,
            params=spec.fixed,
            spec={"study": spec.to_dict(), **extra},
        )
        return self._start(store, record.id, spec, target)

    def resume(
        self,
        store: Store,
        record: Run,
        spec: StudySpec,
        made: Made | None,
        options: Mapping[str, Any],
        settings: Settings,
    ) -> RunHandle:
        from . import NotResumable

        if made is None:
            function = spec.target.get("function")
            raise NotResumable(
                f"study {record.id} tuned the function {function}(): pass it again to resume",
                fix=f"kfnb.tune({function}, resume={record.id!r})",
            )
        target = self._target(made, settings, options)
        store.resume_run(record.id)
        return self._start(store, record.id, spec, target)

    @staticmethod
    def _target(made: Made, settings: Settings, options: Mapping[str, Any]) -> Any:
        """What the runner starts per trial: a pipeline run through one local backend object
        (``options`` are its options), or a training job (``options``: ``kfnb.train``'s)."""
        from .local import FunctionTarget, NotebookTarget

        if made.pipeline is not None:
            from ..backends import open_backend

            impl = open_backend("local", settings, dict(options))
            return NotebookTarget(made.pipeline, impl, made.fixed)
        return FunctionTarget(made.program, made.fixed, options)

    @staticmethod
    def _start(store: Store, study_id: str, spec: StudySpec, target: Any) -> RunHandle:
        from ..backends import RunnerHandle
        from .local import StudyRunner

        runner = StudyRunner(store, study_id, spec, target).start()
        return RunnerHandle(store, study_id, runner)


class KatibTuner(Tuner):
    name = "katib"
    description = "a Katib Experiment on a Kubeflow cluster"

    def submit(
        self,
        spec: StudySpec,
        made: Made,
        options: Mapping[str, Any],
        store: Store,
        settings: Settings,
    ) -> RunHandle:
        from . import katib

        return katib.submit(spec, made, dict(options), store, settings)

    def resume(
        self,
        store: Store,
        record: Run,
        spec: StudySpec,
        made: Made | None,
        options: Mapping[str, Any],
        settings: Settings,
    ) -> RunHandle:
        from . import katib

        return katib.resume(store, record, settings)

    def dry_run(
        self, spec: StudySpec, made: Made, options: Mapping[str, Any], settings: Settings
    ) -> Any:
        from . import katib

        return katib.experiment(spec, made, dict(options), settings)

    def attach(self, store: Store, record: Run, settings: Settings) -> RunHandle:
        from . import katib

        return katib.attach_record(store, record, settings)


TUNERS: dict[str, Tuner] = {t.name: t for t in (LocalTuner(), KatibTuner())}


def get_tuner(name: str) -> Tuner:
    """The tuning backend ``name``, or a ``BackendError`` naming the known ones."""
    if name not in TUNERS:
        raise BackendError(
            f"no tuning backend {name!r}",
            fix=f"{nearest(str(name), list(TUNERS))}known: {', '.join(TUNERS)}",
        )
    return TUNERS[name]
