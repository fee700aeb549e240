"""A handle on any recorded run, whatever made it: the one way surfaces reach a run to refresh,
wait for or cancel it (``kfnb show`` and ``cancel``, the widgets, the server's refresher and
cancel route, ``kfnb.get_run``). Pipelines go through their backend's ``attach``; training jobs
through ``kfnb.training`` (a cluster job through its cluster); studies and their trials through
``kfnb.tuning`` (a Katib experiment through its cluster)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backends import RunHandle
    from .settings import Settings
    from .tracking import Store


def attach(store: Store, run_id: str, settings: Settings) -> RunHandle:
    record = store.get_run(run_id)
    if record.kind == "train":
        from .training import attach_record

        return attach_record(store, record)
    if record.kind in ("tune", "trial"):
        from .tuning import attach_record as attach_study

        return attach_study(store, record, settings)
    from .backends import open_backend

    return open_backend(record.backend, settings).attach(store, record.id)
