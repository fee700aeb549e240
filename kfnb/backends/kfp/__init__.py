"""The ``kfp`` backend: compile the pipeline for Kubeflow Pipelines v2 and run it on a cluster.

``submit`` compiles the pipeline (``compiler``), connects (``connect``: host, namespace and
credentials from flags, environment, config file or the notebook pod), finds or creates the
experiment, creates the run through ``kfp.Client`` and records it in the run store as a remote
run (KFP run id, UI link, host, namespace, the task name of each step; no local runner). The
handle polls KFP and brings the run's and the steps' statuses into the store (``sync``), so
``kfnb runs``/``show``, the widgets and the side panel show it like a local run; ``cancel``
terminates it on the cluster. Importing this module does not import the ``kfp`` SDK.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ...config import ConfigError, config_path, section
from ...dag import GPU, Pipeline
from ...tracking import Store
from .. import Backend, RunHandle
from . import connect, sync
from .compiler import Compiled, CompileOptions, compile_pipeline
from .connect import Endpoint, KfpError

__all__ = ["KfpBackend", "KfpConfig", "KfpError", "KfpRunHandle"]
CONNECTION = ("host", "namespace", "token", "cookies")
MAX_FAILED_POLLS = 3


@dataclass
class KfpConfig:
    """Settings of the ``kfp`` backend; ``None`` means "from the environment or config file"."""

    host: str | None = None
    namespace: str | None = None
    experiment: str | None = None  # default: the notebook's experiment, else the pipeline name
    token: str | None = None
    cookies: str | None = None
    image: str | None = None  # base image of steps that name none (tag or notebook default)
    accelerator: str | None = None  # what a GPU count asks for (default nvidia.com/gpu)
    packages: tuple[str, ...] = ()  # pip-installed at pod start; none by default
    cache: bool | None = None  # None: True (KFP may reuse a step's cached result)
    service_account: str | None = None
    poll_interval: float | None = None  # seconds between status requests; None: 5
    run_name: str | None = None

    def resolved(self) -> KfpConfig:
        """This config with what it leaves unset taken from the config file's ``kfp`` section."""
        settings = section("kfp")
        known = {f.name for f in fields(self)}
        for key in settings:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(
                    f"unknown setting {key!r} in section kfp of {config_path()}. "
                    f"Fix: {hint}use one of: {', '.join(sorted(known))}"
                )
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in settings.items():
            # where to connect is resolved by ``connect.resolve``: flags, then the environment,
            # then this file; so the file must not pose as a flag here
            if key not in CONNECTION and values.get(key) in (None, ()):
                values[key] = tuple(value) if key == "packages" else value
        return KfpConfig(**values)

    @property
    def interval(self) -> float:
        return 5.0 if self.poll_interval is None else float(self.poll_interval)

    def compile_options(self) -> CompileOptions:
        return CompileOptions(
            image=self.image,
            accelerator=self.accelerator or GPU,
            packages=tuple(self.packages),
            cache=self.cache is not False,
        )

    def endpoint(self, host: str | None = None, namespace: str | None = None) -> Endpoint:
        return connect.resolve(
            host or self.host, namespace or self.namespace, self.token, self.cookies, section("kfp")
        )


class KfpRunHandle(RunHandle):
    """A run on Kubeflow Pipelines, followed by polling its API into the store."""

    def __init__(
        self, store: Store, run_id: str, client: Any, endpoint: Endpoint, poll_interval: float = 5.0
    ) -> None:
        super().__init__(store, run_id)
        self.client = client
        self.endpoint = endpoint
        self.poll_interval = poll_interval
        self._last_poll = 0.0
        self._failed_polls = 0

    @property
    def remote(self) -> dict[str, Any]:
        return self.record.remote or {}

    def refresh(self) -> str:
        remote = self.remote
        with connect.calling(self.endpoint, f"read the state of run {remote.get('id')}"):
            kfp_run = self.client.get_run(remote["id"])
        self._last_poll = time.monotonic()
        return sync.apply(self.store, self.id, kfp_run, remote.get("tasks", {}))

    def wait(self, timeout: float | None = None) -> str:
        """Poll KFP until the run ends (or ``timeout``). A failed poll is retried: only
        ``MAX_FAILED_POLLS`` failures in a row raise (the run goes on on the cluster anyway)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            due = self._last_poll + self.poll_interval - time.monotonic()
            if due <= 0:
                if self._poll() in ("SUCCEEDED", "FAILED", "CANCELED"):
                    return self.status
                due = self.poll_interval
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return self.status
            time.sleep(due if left is None else min(due, left))

    def _poll(self) -> str:
        try:
            status = self.refresh()
        except KfpError as err:
            self._failed_polls += 1
            self._last_poll = time.monotonic()
            if self._failed_polls >= MAX_FAILED_POLLS:
                raise
            self.store.event(self.id, "warning", {"message": f"{err} (will retry)"})
            return self.status
        self._failed_polls = 0
        return status

    def cancel(self) -> None:
        remote = self.remote
        with connect.calling(self.endpoint, f"terminate run {remote.get('id')}"):
            self.client.terminate_run(remote["id"])
        self.store.request_cancel(self.id)
        self._last_poll = 0.0  # the next wait() asks at once


class KfpBackend(Backend):
    name = "kfp"
    config_class = KfpConfig
    config: KfpConfig

    def submit(self, pipeline: Pipeline, params: Mapping[str, Any], store: Store) -> RunHandle:
        cfg = self.config.resolved()
        endpoint = cfg.endpoint()
        with tempfile.TemporaryDirectory(prefix="kfnb-kfp-") as tmp:
            compiled = compile_pipeline(
                pipeline, Path(tmp) / "pipeline.yaml", cfg.compile_options()
            )
            client = connect.client(endpoint)
            experiment = cfg.experiment or pipeline.experiment or compiled.name
            run_name = cfg.run_name or f"{pipeline.name} {time.strftime('%Y-%m-%d %H:%M:%S')}"
            kfp_run_id, experiment_id = _create_run(
                client, endpoint, compiled, dict(params), experiment, run_name, cfg
            )
            source = Path(pipeline.source).resolve() if pipeline.source else None
            run = store.create_run(
                kind="pipeline",
                name=pipeline.name,
                backend=self.name,
                notebook=str(source) if source else None,
                notebook_hash=None,
                params=dict(params),
                steps=[s.name for s in pipeline.steps],
                remote={
                    "id": kfp_run_id,
                    "url": _run_url(client, endpoint, kfp_run_id),
                    "host": endpoint.host,
                    "namespace": endpoint.namespace,
                    "experiment": experiment,
                    "experiment_id": experiment_id,
                    "tasks": compiled.tasks,
                },
            )
            saved = Path(run.artifacts_dir) / "pipeline.yaml"
            shutil.copyfile(compiled.path, saved)
        store.add_artifact(run.id, "pipeline.yaml", saved)
        store.event(
            run.id,
            "submitted",
            {"backend": self.name, "host": endpoint.host, "kfp_run_id": kfp_run_id},
        )
        return KfpRunHandle(store, run.id, client, endpoint, cfg.interval)

    def attach(self, store: Store, run_id: str) -> RunHandle:
        record = store.get_run(run_id)
        remote = record.remote or {}
        if not remote.get("id"):
            raise KfpError(
                f"run {record.id} was not submitted to Kubeflow Pipelines "
                f"(backend {record.backend})"
            )
        cfg = self.config.resolved()
        endpoint = cfg.endpoint(remote.get("host"), remote.get("namespace"))
        return KfpRunHandle(store, record.id, connect.client(endpoint), endpoint, cfg.interval)


def _create_run(
    client: Any,
    endpoint: Endpoint,
    compiled: Compiled,
    params: dict[str, Any],
    experiment: str,
    run_name: str,
    cfg: KfpConfig,
) -> tuple[str, str]:
    quiet = contextlib.redirect_stdout(io.StringIO())  # the SDK prints links; kfnb shows them
    with connect.calling(endpoint, f"find or create experiment {experiment!r}"), quiet:
        exp = client.create_experiment(experiment, namespace=endpoint.namespace)
    with connect.calling(endpoint, "create the run"), contextlib.redirect_stdout(io.StringIO()):
        result = client.create_run_from_pipeline_package(
            str(compiled.path),
            arguments=params,
            run_name=run_name,
            experiment_id=exp.experiment_id,
            service_account=cfg.service_account,
        )
    return str(result.run_id), str(exp.experiment_id)


def _run_url(client: Any, endpoint: Endpoint, run_id: str) -> str:
    try:
        prefix = client._get_url_prefix()  # what the SDK itself links to (UI host rules)
    except Exception:
        prefix = endpoint.host
    return f"{prefix or endpoint.host}/#/runs/details/{run_id}"
